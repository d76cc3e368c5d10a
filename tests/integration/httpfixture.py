#!/usr/bin/env python3
"""A small static HTTP server for the integration tests, run as a subprocess.

    python3 httpfixture.py --dir tests/fixtures [--port 0]

Serves the files of --dir on 127.0.0.1 and, besides them:

    /redirect/<path>   302 to /<path>
    /status/<code>     an empty response with that status code

Missing files give 404 as usual. With --port 0 (the default) the kernel picks
a free port; the first line on stdout is "port N" once the server listens.
"""

import argparse
import functools
import http.server
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _special(self):
        path = self.path.split("?", 1)[0]
        if path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", "/" + path[len("/redirect/"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        if path.startswith("/status/"):
            try:
                code = int(path[len("/status/"):])
            except ValueError:
                code = 400
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        return False

    def do_GET(self):
        if not self._special():
            super().do_GET()

    def do_HEAD(self):
        if not self._special():
            super().do_HEAD()

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        sys.stderr.write("%s %s\n" % (self.log_date_time_string(), format % args))
        sys.stderr.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    opts = ap.parse_args()
    handler = functools.partial(Handler, directory=opts.dir)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", opts.port), handler)
    server.daemon_threads = True
    print("port %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
