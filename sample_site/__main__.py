"""``python -m sample_site [--self-hosted] [--port N]``: run the demo shop on 127.0.0.1."""

from __future__ import annotations

import argparse

from sample_site import create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sample_site", description=__doc__)
    parser.add_argument("--self-hosted", action="store_true",
                        help="push with the site's own VAPID key instead of MoEngage")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    app = create_app(mode="self-hosted" if args.self_hosted else None)
    print(f" * webpush_kit sample shop ({app.config['SAMPLE_MODE']} mode): "
          f"http://127.0.0.1:{args.port}/")
    app.run(host="127.0.0.1", port=args.port, debug=False)


if __name__ == "__main__":
    main()
