/*
 * Test stand-in for MoEngage's moe_webSdk.min.latest.js. The real SDK comes from
 * cdn.moengage.com, which these machines cannot reach, and refuses to start under a
 * HeadlessChrome user agent (MOENGAGE-WEB-SDK.md section 1); this one starts anywhere.
 *
 * It implements the documented surface the page-side code relies on:
 *  - window.moe(cfg) returns the SDK object (a second call warns, as the SDK does) and
 *    replays the calls the snippet's stub queued in window.moengage_q;
 *  - snake_case and camelCase methods (track_event, add_unique_user_id, add_first_name,
 *    ..., destroy_session, call_web_push, identifyUser, logoutUser, trackEvent, ...), each
 *    returning a Promise like the real ones;
 *  - device.getUuid() (a new uuid after destroy_session), device.getPushToken(),
 *    device.getPermissionState(cb), vitals(), onsite.getData/registerCallback;
 *  - window.moeBannerText, which Segment's integration waits for.
 * Test hooks:
 *  - window.__moeCalls: every call as {name, args} (Dates as {date: ISO string}), with the
 *    init config as {name: 'moe', args: [cfg]};
 *  - window.__moeFire(type, detail): dispatch a documented window event (MOE_LIFECYCLE,
 *    MOE_OPT_IN, MOE_AUTOMATED_EVENTS) with that detail, as the SDK would.
 */
(function () {
  'use strict';
  var calls = window.__moeCalls = window.__moeCalls || [];
  var instance = null;
  var uuid = newUuid();

  function newUuid() {
    var hex = '';
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    for (var i = 0; i < 16; i++) hex += (bytes[i] + 0x100).toString(16).slice(1);
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' +
      hex.slice(16, 20) + '-' + hex.slice(20);
  }
  function plain(value) {
    if (value instanceof Date) return { date: isNaN(value) ? null : value.toISOString() };
    if (value && typeof value === 'object') {
      try { return JSON.parse(JSON.stringify(value)); } catch (e) { return String(value); }
    }
    return value;
  }
  function record(name, args) {
    calls.push({ name: name, args: Array.prototype.slice.call(args).map(plain) });
  }
  function fire(type, detail) {
    window.dispatchEvent(new CustomEvent(type, { detail: detail }));
  }
  window.__moeFire = fire;

  var METHODS = [
    'track_event', 'add_user_attribute', 'add_first_name', 'add_last_name', 'add_email',
    'add_mobile', 'add_user_name', 'add_gender', 'add_birthday', 'add_unique_user_id',
    'update_unique_user_id', 'moe_events', 'call_web_push', 'track',
    'location_type_attribute', 'identifyUser', 'getUserIdentities', 'trackEvent',
    'callWebPush', 'setUserAttribute', 'setFirstName', 'setLastName', 'setEmailId',
    'setMobileNumber', 'setUserName', 'setGender', 'setBirthDate', 'trackPageView',
    'enableSdk', 'disableSdk'
  ];

  function makeInstance() {
    var sdk = {};
    METHODS.forEach(function (name) {
      sdk[name] = function () { record(name, arguments); return Promise.resolve(); };
    });
    function logout(name) {
      return function () {
        record(name, arguments);
        // destroy_session: a new device uuid; the push subscription survives (section 4).
        uuid = newUuid();
        fire('MOE_AUTOMATED_EVENTS', { name: 'MOE_LOGOUT', data: {} });
        return Promise.resolve();
      };
    }
    sdk.destroy_session = logout('destroy_session');
    sdk.logoutUser = logout('logoutUser');
    sdk.device = {
      getUuid: function () { return uuid; },
      getPushToken: function () {
        var sub = null;
        try { sub = JSON.parse(localStorage.getItem('__standinSub') || 'null'); } catch (e) {}
        return sub ? sub.endpoint.split('/').pop() : null;
      },
      getPermissionState: function (cb) {
        var state = window.Notification ? Notification.permission : 'denied';
        if (state === 'default') state = 'prompt';
        if (typeof cb === 'function') cb(state);
        return state;
      }
    };
    sdk.vitals = function () {
      return { deviceUuid: uuid, userDetails: {}, pushToken: sdk.device.getPushToken(),
               softAskStatus: null, hardAskStatus: null };
    };
    sdk.onsite = {
      getData: function () { record('onsite.getData', arguments); return Promise.resolve(null); },
      registerCallback: function () { record('onsite.registerCallback', arguments); }
    };
    return sdk;
  }

  window.moe = function (cfg) {
    if (instance) {
      console.warn('MoEngage Web SDK initialized multiple times. Please integrate the Web ' +
                   'SDK only once!');
      record('moe:again', [cfg]);
      return instance;
    }
    record('moe', [cfg]);
    instance = makeInstance();
    var queued = window.moengage_q || [];
    window.moengage_q = [];
    queued.forEach(function (item) {
      var path = String(item.f).split('.');
      var target = path.length > 1 ? instance[path[0]] : instance;
      var fn = target && target[path[path.length - 1]];
      if (typeof fn === 'function') fn.apply(target, item.a);
    });
    setTimeout(function () { fire('MOE_LIFECYCLE', { name: 'SDK_INITIALIZED', data: cfg }); }, 0);
    return instance;
  };
  window.moeBannerText = 'banner';
})();
