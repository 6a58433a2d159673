"""Publish the asv dashboard and prove in headless Chromium that its graphs render.

Run from anywhere after results exist (e.g. ``asv run -E existing --quick``)::

    python asv_bench/check_dashboard.py [--screenshot dashboard.png]

It runs ``asv publish``, serves ``asv_bench/html`` on a loopback port, loads the
page of one benchmark in Chromium (``--headless --no-sandbox --disable-gpu``)
and checks that the page's JavaScript drew the plot: a flot canvas and the
legend of the benchmark's parameters. Exit status 0 means the graphs render.
"""
import argparse
import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARK = "losses.CrossEntropy.time_loss_and_gradient"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no Chromium found: install Debian's `chromium` package")


def serve(directory):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def browse(url, extra):
    with tempfile.TemporaryDirectory() as profile:
        command = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                   "--virtual-time-budget=20000", "--window-size=1400,900", *extra, url]
        return subprocess.run(command, capture_output=True, text=True, timeout=120).stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screenshot", help="also save a PNG of the graph page here")
    args = parser.parse_args(argv)
    subprocess.run(["asv", "publish"], cwd=HERE, check=True)
    server = serve(HERE / "html")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/#{BENCHMARK}"
        dom = browse(url, ["--dump-dom"])
        if args.screenshot:
            browse(url, [f"--screenshot={Path(args.screenshot).resolve()}"])
    finally:
        server.shutdown()
    checks = {"a plot canvas": 'class="flot-base"' in dom,
              "the benchmark's title": BENCHMARK in dom,
              "a parameter legend": "fastloss-cython" in dom}
    for what, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
