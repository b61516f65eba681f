"""The rendered docs as a person opens them: built with `python tools/build_docs.py` into a temp folder, served over
HTTP on 127.0.0.1 and opened page by page in headless Chromium. A page fails when it does not load, when one of its
images did not load (naturalWidth 0), when a link to a local page or anchor leads nowhere, when it needs anything
from the network, or when its stylesheet is missing. Two pages are also opened from file://.

Needs Debian's `chromium` (`.ci/run` installs it in CI). Skipped when Chromium is absent, except in CI (CI=true).
`TEST_NBS_DIR=folder` checks the notebooks of another folder (for trying the build on a scratch copy).
"""
from __future__ import annotations
import functools, http.server, json, os, subprocess, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'tools'))
from screenshot import find_chromium, run_chromium  # noqa: E402
import build_docs  # noqa: E402
from build_docs import notebooks_in_order, page_name  # noqa: E402

browser = pytest.mark.browser
NBS = Path(os.environ.get('TEST_NBS_DIR', ROOT / 'nbs'))
IN_CI = os.environ.get('CI', '').lower() in ('true', '1', 'yes')
PAGES = [page_name(p) for p in notebooks_in_order(NBS)]

# Injected into the test copy of every page (never into docs/): on `load` it records what only the browser knows.
CHECK_JS = """<script>(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    if (t && t !== window && (t.src || t.href)) errors.push('failed to load ' + String(t.src || t.href).slice(0, 160));
    else errors.push('script error: ' + e.message);
  }, true);
  window.addEventListener('load', function () {
    var imgs = Array.prototype.slice.call(document.images);
    var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                  .map(function (i) { return String(i.currentSrc || i.src).slice(0, 160); });
    var r = {loaded: true, images: imgs.length, badImages: bad, errors: errors,
             styled: getComputedStyle(document.body).marginTop === '0px'};
    var el = document.createElement('script'); el.type = 'application/json'; el.id = '__doccheck';
    el.textContent = JSON.stringify(r); document.body.appendChild(el);
  });
})();</script>"""


class _Dom(HTMLParser):
    "What a page's DOM holds: title, ids, links, images, external resources, the checker's report."
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title, self.ids, self.links, self.imgs, self.resources, self.h1 = '', set(), [], [], [], 0
        self.check, self._in, self._buf, self.nav = None, None, [], []
        self._nav_depth = 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        if tag == 'nav' and 'sidebar' in (a.get('class') or ''): self._nav_depth = 1
        elif tag == 'nav' and self._nav_depth: self._nav_depth += 1
        if tag == 'a' and a.get('href') is not None:
            self.links.append(a['href'])
            if self._nav_depth: self.nav.append(a['href'])
        if tag == 'img': self.imgs.append(a.get('src') or '')
        if tag == 'h1': self.h1 += 1
        if tag in ('script', 'img', 'iframe', 'audio', 'video', 'source') and a.get('src'):
            self.resources.append(a['src'])
        if tag == 'link' and a.get('href'): self.resources.append(a['href'])
        if tag == 'title' or (tag == 'script' and a.get('id') == '__doccheck'): self._in, self._buf = tag, []
    def handle_endtag(self, tag):
        if tag == 'nav' and self._nav_depth: self._nav_depth -= 1
        if tag == self._in:
            text = ''.join(self._buf)
            if tag == 'title': self.title = text.strip()
            else: self.check = json.loads(text)
            self._in = None
    def handle_data(self, data):
        if self._in: self._buf.append(data)


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list  # (path, status), shared by the server's threads
    def log_request(self, code='-', size='-'):
        self.requests.append((self.path, int(code) if str(code).isdigit() else getattr(code, 'value', 0)))
    def log_message(self, *args): pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a browser closing a connection early is not a failure
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def _dump(url: str) -> _Dom:
    "The DOM of `url` after its load event, as headless Chromium serialises it."
    r = run_chromium(['--dump-dom', url], timeout=90)
    dom = _Dom(); dom.feed(r.stdout); dom.close()
    dom.stderr = r.stderr[-1500:]
    return dom


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "Build the docs, inject the checker, serve them, and dump every page (in parallel)."
    if find_chromium() is None:
        if IN_CI: pytest.fail('Chromium is not installed, and in CI this test must run: apt-get install -y chromium')
        pytest.skip('Chromium is not installed (apt-get install chromium); this test runs in CI')
    out = tmp_path_factory.mktemp('docs')
    t0 = time.time()
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'build_docs.py'), '--nbs', str(NBS), '--out', str(out)],
                       capture_output=True, text=True, timeout=300)
    build_s = time.time() - t0
    assert r.returncode == 0, f'python tools/build_docs.py failed:\n{r.stdout}\n{r.stderr}'
    for f in out.glob('*.html'):
        f.write_text(f.read_text(encoding='utf-8').replace('<head>', '<head>\n' + CHECK_JS, 1), encoding='utf-8')
    requests = []
    handler = type('H', (_Handler,), {'requests': requests})
    server = _Server(('127.0.0.1', 0), functools.partial(handler, directory=str(out)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f'http://127.0.0.1:{server.server_address[1]}/'
    t0 = time.time()
    try:
        with ThreadPoolExecutor(3) as ex:
            doms = dict(zip(PAGES, ex.map(lambda p: _dump(base + p), PAGES)))
            files = dict(zip(PAGES[:2], ex.map(lambda p: _dump((out / p).as_uri()), PAGES[:2])))
    finally:
        server.shutdown(); server.server_close()
    print(f'\ndocs build {build_s:.1f} s, {len(PAGES)} pages opened in Chromium in {time.time() - t0:.1f} s')
    for p in PAGES:
        print(f'  {p:<22} images={len(doms[p].imgs):<3} links={len(doms[p].links):<4} title={doms[p].title!r}')
    return dict(out=out, base=base, doms=doms, files=files, requests=requests, build_log=r.stdout)


def _problems(page: str, url: str, dom: _Dom, site: dict, doms: dict) -> list[str]:
    "Everything wrong with one opened page."
    out, errs = site['out'], []
    if not dom.check or not dom.check.get('loaded'):
        return [f'{page}: did not load (no load event reached the page). Chromium said:\n{dom.stderr}']
    if not dom.title: errs.append(f'{page}: no <title>')
    if dom.h1 < 1: errs.append(f'{page}: no <h1> heading: give the notebook a `# Title` markdown cell')
    if not dom.check['styled']: errs.append(f'{page}: the stylesheet was not applied')
    errs += [f'{page}: image did not load: {s}' for s in dom.check['badImages']]
    errs += [f'{page}: {e}' for e in dom.check['errors']]
    here = urlsplit(url)
    for src in dom.resources:
        u = urlsplit(urljoin(url, src))
        if u.scheme in ('http', 'https') and u.netloc != here.netloc:
            errs.append(f'{page}: needs the network for {src[:120]} (the site must be self-contained)')
    for href in dom.links:
        u = urlsplit(urljoin(url, href))
        if u.scheme not in ('http', 'https', 'file') or (u.scheme != 'file' and u.netloc != here.netloc): continue
        rel = unquote(u.path)[len(unquote(urlsplit(urljoin(url, './')).path)):] or 'index.html'
        target = out / rel
        if target.is_dir(): target, rel = target / 'index.html', (rel.rstrip('/') + '/index.html').lstrip('/')
        if not target.exists():
            errs.append(f'{page}: broken link {href!r}: {rel} does not exist'); continue
        if u.fragment and target.suffix == '.html':
            ids = doms[rel].ids if rel in doms else _static_ids(target)
            if unquote(u.fragment) not in ids:
                errs.append(f'{page}: broken anchor {href!r}: no id {u.fragment!r} in {rel}')
    missing = set(PAGES) - {urlsplit(h).path for h in dom.nav}
    if missing: errs.append(f'{page}: navigation does not list {sorted(missing)}')
    return errs


@functools.lru_cache(None)
def _static_ids(path: Path) -> set:
    d = _Dom(); d.feed(path.read_text(encoding='utf-8')); return d.ids


def test_index_exists():
    assert (NBS / 'index.ipynb').exists(), f'{NBS}/index.ipynb is missing: it becomes docs/index.html and README.md'


@browser
@pytest.mark.parametrize('page', PAGES)
def test_page_in_browser(site, page):
    errs = _problems(page, site['base'] + page, site['doms'][page], site, site['doms'])
    assert not errs, '\n'.join(errs)


@browser
def test_pages_from_file_urls(site):
    "The site also works opened straight from disk (file://), as after `open docs/index.html`."
    errs = [e for p, dom in site['files'].items()
            for e in _problems(p, (site['out'] / p).as_uri(), dom, site, site['doms'])]
    assert not errs, '\n'.join(errs)


@browser
def test_no_failed_requests(site):
    "Nothing the pages asked the server for was missing (stylesheets, images, pages)."
    bad = [(p, s) for p, s in site['requests'] if s >= 400 and not p.startswith('/favicon.ico')]
    assert not bad, f'requests that failed: {bad}'
    assert site['requests'], 'the server saw no requests at all'


@browser
def test_prev_next_follow_reading_order(site):
    "Each page links to the page before and after it in reading order."
    for i, p in enumerate(PAGES):
        links = site['doms'][p].links
        if i > 0: assert PAGES[i - 1] in links, f'{p} does not link back to {PAGES[i - 1]}'
        if i + 1 < len(PAGES): assert PAGES[i + 1] in links, f'{p} does not link on to {PAGES[i + 1]}'


# ---------------------------------------------------------------- the build itself (no browser needed)

_PNG = ('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==')

def _nb(*cells):
    import nbformat
    nb = nbformat.v4.new_notebook()
    for kind, src, *outs in cells:
        if kind == 'md': nb.cells.append(nbformat.v4.new_markdown_cell(src))
        else: nb.cells.append(nbformat.v4.new_code_cell(src, outputs=[nbformat.from_dict(o) for o in outs]))
    return nb

def _stream(text): return {'output_type': 'stream', 'name': 'stdout', 'text': text}
def _data(**d):
    return {'output_type': 'display_data', 'metadata': {}, 'data': {k.replace('_', '/', 1): v for k, v in d.items()}}


def test_directives_handled_as_nbdev(tmp_path):
    "hide/export cells vanish, echo: false shows only output, #| lines never show, show_doc markdown becomes HTML."
    import nbformat
    nbs = tmp_path / 'nbs'; nbs.mkdir()
    nbformat.write(_nb(
        ('md', '# First chapter\n\n> What it is about.\n\nMath $x_t$ and\n\n$$\\bar\\alpha_t = 1$$\n\n'
               'On to [the next](01_second.ipynb#part-two).'),
        ('code', '#| default_exp core'),
        ('code', '#| hide\nHIDDEN_CELL = 1', _stream('HIDDEN_OUTPUT')),
        ('code', '#| export\ndef exported_fn(): "Doc."', ),
        ('code', '#| echo: false\nNO_ECHO_SOURCE = 1', _stream('ECHOED_OUTPUT')),
        ('code', '#| output: false\nSHOWN_SOURCE = 1', _stream('SUPPRESSED_OUTPUT')),
        ('code', 'show_doc(thing)',
         _data(text_markdown='---\n\n### thing\n\n```python\ndef thing(a:int)\n```\n\n*A thing.*')),
        ('code', 'KEPT_LINE = 1\nDROPPED_LINE = 2  #| hide_line', _data(image_png=_PNG, text_plain='<Figure>')),
        ('code', 'for i in range(3): print(i, end="\\r")\nprint("done")', _stream('0\r1\r2\rdone\n')),
    ), nbs / '00_first.ipynb')
    nbformat.write(_nb(('md', '# Second\n\n## Part two\n\nBack to [the first](00_first.ipynb).')),
                   nbs / '01_second.ipynb')
    out = tmp_path / 'site'
    pages = build_docs.build(nbs, out, root=tmp_path, verbose=False)
    assert [p.name for p in pages] == ['first.html', 'second.html']
    first, second = (out / 'first.html').read_text(), (out / 'second.html').read_text()
    for gone in ('HIDDEN_CELL', 'HIDDEN_OUTPUT', 'exported_fn', 'NO_ECHO_SOURCE', 'SUPPRESSED_OUTPUT', 'default_exp',
                 'DROPPED_LINE', '#|', 'show_doc(thing)'):
        assert gone not in first, f'{gone!r} should not be on the page'
    for shown in ('ECHOED_OUTPUT', 'SHOWN_SOURCE', 'KEPT_LINE', '<h3 id="thing">', '<em>A thing.</em>',
                  '<title>First chapter', 'What it is about.', 'src="data:image/png;base64,',
                  'href="second.html#part-two"', 'rel="next" href="second.html"', 'href="_static/site.css"'):
        assert shown in first, f'{shown!r} missing from the page'
    assert '2\rdone' not in first and '>done' in first.replace('\n', '')  # progress rewritten with \r collapses
    if build_docs._tex2mathml: assert '<math' in first and '$x_t$' not in first  # MathML: no script, no network
    else: assert '<span class="math">$x_t$</span>' in first                       # without latex2mathml: raw TeX
    assert 'rel="prev" href="first.html"' in second and 'class="current"' in second
    assert (out / '.nojekyll').exists()
    assert build_docs.build(nbs, tmp_path / 'again', root=tmp_path, verbose=False) and \
        (tmp_path / 'again' / 'first.html').read_text() == first, 'a rebuild must give the same pages'


def test_readme_from_index(tmp_path):
    "--readme: markdown verbatim, code as python blocks, text outputs as blocks, images saved under docs/images."
    import nbformat
    nbs = tmp_path / 'nbs'; nbs.mkdir()
    nbformat.write(_nb(('md', '# proj\n\n> Short.\n\nSee [core](00_core.ipynb).'),
                       ('code', '#| hide\nfrom proj import *'),
                       ('code', 'print(1 + 1)', _stream('2\n')),
                       ('code', 'show(grid)', _data(image_png=_PNG, text_plain='<Figure>'))), nbs / 'index.ipynb')
    readme = build_docs.write_readme(nbs / 'index.ipynb', tmp_path / 'README.md', tmp_path / 'docs' / 'images')
    text = readme.read_text()
    assert '# proj' in text and '[core](nbs/00_core.ipynb)' in text and 'from proj import' not in text
    assert '```python\nprint(1 + 1)\n```' in text and '```\n2\n```' in text
    assert '![](docs/images/readme_1.png)' in text and (tmp_path / 'docs' / 'images' / 'readme_1.png').exists()
