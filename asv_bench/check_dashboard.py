"""Publish the asv dashboard and prove in headless Chromium that its graphs render.

Run from anywhere once results of the current benchmark code are saved (``asv run``,
or ``asv run -E existing --set-commit-hash $(git rev-parse HEAD)``; a ``--quick`` run
or an existing environment without a commit hash saves none)::

    python asv_bench/check_dashboard.py [--screenshot dashboard.png]

It runs ``asv publish``, makes the dashboard work offline (asv's page loads
jQuery, flot and bootstrap from CDNs; the same versions come from the npm
registry with ``npm pack`` and are served beside the page), serves
``asv_bench/html`` on a loopback port, loads the page of one benchmark in
Chromium (``--headless --no-sandbox --disable-gpu``) and checks that the
page's JavaScript drew the plot: a flot canvas and the legend of the
benchmark's parameters. Exit status 0 means the graphs render.
"""
import argparse
import functools
import http.server
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARK = "losses.CrossEntropy.time_loss_and_gradient"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# asv's CDN scripts and styles -> (npm package, file inside it)
CDN_FILES = {
    "https://code.jquery.com/jquery-3.3.1.min.js": ("jquery@3.3.1", "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": ("flot@0.8.3", "jquery.flot.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js":
        ("flot@0.8.3", "jquery.flot.time.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js":
        ("flot@0.8.3", "jquery.flot.selection.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js":
        ("flot@0.8.3", "jquery.flot.categories.js"),
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js":
        ("flot-orderbars@1.0.0", "js/jquery.flot.orderBars.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js":
        ("stupid-table-plugin@1.1.3", "stupidtable.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js":
        ("blueimp-md5@2.19.0", "js/md5.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js":
        ("bootstrap@3.1.1", "dist/js/bootstrap.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css":
        ("bootstrap@3.1.1", "dist/css/bootstrap.min.css"),
}


def localise(html):
    """Serve asv's CDN files from html/vendor/, fetched once from the npm registry into .vendor/."""
    cache = HERE / ".vendor"
    cache.mkdir(exist_ok=True)
    vendor = html / "vendor"
    vendor.mkdir(exist_ok=True)
    index = html / "index.html"
    page = index.read_text()
    for url, (package, member) in CDN_FILES.items():
        tarball = cache / (package.replace("@", "-") + ".tgz")
        if not tarball.exists():
            name = subprocess.run(["npm", "pack", package, "--silent"], cwd=cache, check=True,
                                  capture_output=True, text=True).stdout.split()[-1]
            (cache / name).rename(tarball)
        local = vendor / f"{package.split('@')[0]}-{Path(member).name}"
        with tarfile.open(tarball) as archive:
            local.write_bytes(archive.extractfile(f"package/{member}").read())
        page = page.replace(url, f"vendor/{local.name}")
    # The hashes pin the CDN's minified builds; the npm files are the same versions, unminified.
    index.write_text(re.sub(r'\s(integrity|crossorigin)="[^"]*"', "", page))


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    sys.exit("no Chromium found: install Debian's `chromium` package")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def serve(directory):
    handler = functools.partial(QuietHandler, directory=str(directory))
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
    localise(HERE / "html")
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
