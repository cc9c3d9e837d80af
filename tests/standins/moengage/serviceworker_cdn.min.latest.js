/*
 * Test stand-in for MoEngage's serviceworker_cdn.min.latest.js. The real file comes from
 * cdn.moengage.com, which these machines cannot reach. Like MoEngage's worker it shows
 * MoEngage's pushes; it ignores pushes that carry webpush_kit's marker (the site's own),
 * so a test can count notifications per push.
 */
self.moengageStandin = { started: (self.moengageStandin ? self.moengageStandin.started : 0) + 1 };
self.addEventListener('push', function (event) {
  var text = '';
  try { text = event.data ? event.data.text() : ''; } catch (e) { text = ''; }
  var message = null;
  try { message = JSON.parse(text); } catch (e) { message = null; }
  if (message && message.webpush_kit) return;
  var title = (message && typeof message.title === 'string') ? message.title : 'MoEngage push';
  event.waitUntil(self.registration.showNotification(title, {
    body: message && message.body ? String(message.body) : text,
    data: { moengage: true }
  }).then(function () {
    self.moengageStandin.shown = (self.moengageStandin.shown || 0) + 1;
  }, function (err) {
    self.moengageStandin.error = String(err);
  }));
});
