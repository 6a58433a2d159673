"""Render pages of the built documentation in headless Chromium and check that they are drawn.

Run after the HTML build (``.ci/docs`` does both)::

    python docs/check_render.py [docs/_build/html] [--page PATH[#SIGNATURE_ID] ...] [--screenshot DIR]

It serves the build folder on a loopback port, as ``asv_bench/check_dashboard.py``
does for the asv dashboard, and loads each page in Chromium (``--headless
--no-sandbox --disable-gpu``, a fresh profile).  Every HTML page is served with a
small script added at its end which, once the page has loaded, measures what is
drawn and writes it into the DOM that ``--dump-dom`` prints: how many links of
the header's navigation and of the sidebar are visible (non-zero size, not
hidden), the text of the signature whose id the page was asked for, and every
resource the page loaded.  A page passes when its navigation is drawn, the
signature (if asked for) is drawn and names the function, the theme's stylesheet
was loaded, and no resource came from anywhere but the loopback server.  Before
that, the built HTML and CSS are searched for ``<script>``/``<link>`` tags and CSS
``url()`` pointing to another host: the site must need no internet.

The default pages are the index (navigation) and the API page of
``fastloss.cross_entropy`` (navigation, sidebar and signature).  Exit status 0
means every check passed.
"""
import argparse
import functools
import html
import http.server
import json
import re
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The asv dashboard's check starts Chromium the same way: its flags, a fresh profile, a loopback URL.
sys.path.insert(0, str(HERE.parent / "asv_bench"))
from check_dashboard import QuietHandler, browse  # noqa: E402
DEFAULT_PAGES = ["index.html", "api/generated/fastloss.cross_entropy.html#fastloss.cross_entropy"]
THEME_STYLESHEET = "pydata-sphinx-theme.css"
# Enough of the header's links to say the site's sections are there (the index has six).
MIN_HEADER_LINKS = 3

# Added before </body> of every page served: the measurements, as JSON in <pre id="render-check">.
PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const drawn = (element) => {
    if (!element) return false;
    const box = element.getBoundingClientRect(), style = getComputedStyle(element);
    return box.width > 0 && box.height > 0 && style.visibility !== "hidden" && style.display !== "none";
  };
  const drawnLinks = (selector) => [...document.querySelectorAll(selector)].filter(drawn).length;
  const id = new URLSearchParams(location.search).get("signature");
  const signature = id ? document.getElementById(id) : null;
  const report = {
    header_links: drawnLinks(".bd-header .navbar-nav a.nav-link"),
    sidebar_links: drawnLinks(".bd-sidebar-primary nav a"),
    signature: drawn(signature) ? signature.textContent.replace(/\\s+/g, " ").trim() : null,
    resources: performance.getEntriesByType("resource").map((entry) => entry.name),
  };
  const out = document.createElement("pre");
  out.id = "render-check";
  out.textContent = JSON.stringify(report);
  document.body.appendChild(out);
}, 300));
</script>
"""
REPORT = re.compile(r'<pre id="render-check">(.*?)</pre>', re.DOTALL)
EXTERNAL_TAG = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//[^>]*>", re.IGNORECASE)
EXTERNAL_CSS_URL = re.compile(r"url\(\s*[\"']?(?:https?:)?//[^)]*\)", re.IGNORECASE)


def external_references(build):
    """Every <script>/<link> tag of the HTML and CSS url() of the build that names another host."""
    found = []
    for path in sorted(build.rglob("*")):
        pattern = {".html": EXTERNAL_TAG, ".css": EXTERNAL_CSS_URL}.get(path.suffix)
        if pattern:
            found += [f"{path.relative_to(build)}: {match}" for match in pattern.findall(path.read_text())]
    return found


class ProbingHandler(QuietHandler):
    """Serves the build folder quietly, with PROBE added to every HTML page."""

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if path.suffix != ".html" or not path.is_file():
            return super().do_GET()
        page = path.read_text().replace("</body>", PROBE + "</body>").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)


def serve(directory):
    handler = functools.partial(ProbingHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def page_checks(report, origin, signature_id):
    """What must hold of one page's measurements, each a (description, passed) pair."""
    if report is None:
        return [("the page loaded and ran its measurement", False)]
    foreign = [name for name in report["resources"] if not name.startswith(origin)]
    checks = [(f"the header's navigation is drawn ({report['header_links']} links)",
               report["header_links"] >= MIN_HEADER_LINKS),
              ("the theme's stylesheet is loaded",
               any(name.split("?")[0].endswith(THEME_STYLESHEET) for name in report["resources"])),
              (f"every resource came from the loopback server{': not ' + ', '.join(foreign) if foreign else ''}",
               not foreign)]
    if signature_id:
        name = signature_id.rsplit(".", 1)[-1]
        checks += [(f"the sidebar's navigation is drawn ({report['sidebar_links']} links)",
                    report["sidebar_links"] >= 1),
                   (f"the signature of {signature_id} is drawn: {report['signature']!r}",
                    report["signature"] is not None and f"{name}(" in report["signature"])]
    return checks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", nargs="?", default=HERE / "_build" / "html", type=Path,
                        help="the built HTML folder (default docs/_build/html)")
    parser.add_argument("--page", action="append", dest="pages",
                        help="a page to check, PATH or PATH#SIGNATURE_ID (default: %(default)s)")
    parser.add_argument("--screenshot", type=Path, help="also save a PNG of each page into this folder")
    args = parser.parse_args(argv)
    pages = args.pages or DEFAULT_PAGES
    build = args.build.resolve()

    external = external_references(build)
    ok = not external
    print(f"{'ok  ' if ok else 'FAIL'} no <script>/<link> tag or CSS url() names another host")
    for reference in external:
        print(f"       {reference}")

    server = serve(build)
    origin = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        for page in pages:
            path, _, signature_id = page.partition("#")
            url = origin + path + (f"?signature={signature_id}" if signature_id else "")
            dom = browse(url, ["--dump-dom"])
            found = REPORT.search(dom)
            report = json.loads(html.unescape(found.group(1))) if found else None
            print(f"{path}:")
            for what, passed in page_checks(report, origin, signature_id):
                print(f"  {'ok  ' if passed else 'FAIL'} {what}")
                ok = ok and passed
            if args.screenshot:
                args.screenshot.mkdir(parents=True, exist_ok=True)
                browse(url, [f"--screenshot={args.screenshot.resolve() / (path.replace('/', '_') + '.png')}"])
    finally:
        server.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
