#!/usr/bin/env python3
"""Build the documentation site in docs/ from the notebooks in nbs/, without Quarto.

    python tools/build_docs.py              # nbs/*.ipynb -> docs/*.html (saved outputs, nothing is executed)
    python tools/build_docs.py --readme     # ... and README.md from nbs/index.ipynb (nbdev_readme needs Quarto)
    python tools/build_docs.py --out DIR    # build somewhere else (the browser test builds into a temp folder)

Every notebook becomes one page: `index.ipynb` -> `index.html`, `00_core.ipynb` -> `core.html` (nbdev's naming,
so the doc links in `_modidx.py` and a Quarto build agree). Reading order is file-name order with the index first;
chapter titles come from each notebook's first `# Title` heading. nbdev's directives are honoured as `nbdev_docs`
does: cells marked `hide`, `export`, `exporti`, `default_exp` or `include: false` are left out, `echo: false` and
`show_doc` cells show only their output, `output: false` only their source, `#|` lines never show, and exported
functions and classes without a `show_doc` get one. Images are embedded as data URIs and LaTeX becomes MathML when
`latex2mathml` is installed (raw TeX otherwise), so the pages need no network and work from file:// as well as
from any static server. With Quarto installed, `nbdev_docs` still builds its own site into the same docs/ folder.
"""
from __future__ import annotations
import argparse, ast, base64, configparser, copy, html, importlib, logging, os, re, sys, time, warnings
from pathlib import Path

import nbformat
from jinja2 import DictLoader
from nbconvert import HTMLExporter
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from mistune import HTMLRenderer
from pygments.formatters import HtmlFormatter

try: from jinja2 import pass_context
except ImportError: from jinja2 import contextfilter as pass_context  # jinja2 < 3

try: from latex2mathml.converter import convert as _tex2mathml
except ImportError: _tex2mathml = None

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = 'butterfly_diffusion tools/build_docs.py'

# --------------------------------------------------------------------------- names, titles, directives

def page_name(nb_path: Path) -> str:
    "The HTML file a notebook becomes: nbdev's rule (`00_core.ipynb` -> `core.html`, `index.ipynb` -> `index.html`)."
    return re.sub(r'^\d+[a-zA-Z0-9]*_', '', nb_path.name.lower()).rsplit('.', 1)[0] + '.html'

def notebooks_in_order(nbs: Path) -> list[Path]:
    "The notebooks of `nbs` in reading order: the index first, then by file name (hidden and `_` files skipped)."
    nbs_ = sorted(p for p in nbs.glob('*.ipynb') if not p.name.startswith(('.', '_')))
    return sorted(nbs_, key=lambda p: (p.stem != 'index', p.name))

_re_dir = re.compile(r'^\s*#\s*\|\s?(.*)$')

def split_directives(source: str) -> tuple[dict, str]:
    "nbdev's leading `#| key: value` lines of a code cell as a dict (keys lower-case), and the source without them."
    lines, dirs = source.split('\n'), {}
    i = 0
    while i < len(lines) and (_re_dir.match(lines[i]) or (not lines[i].strip() and dirs)):
        m = _re_dir.match(lines[i])
        if m and m.group(1).strip():
            key, _, val = m.group(1).strip().partition(':' if ':' in m.group(1).split()[0] else ' ')
            dirs[key.strip().lower()] = val.strip()
        i += 1
    body = '\n'.join(l for l in lines[i:] if not re.search(r'#\s*\|\s*hide_line\s*$', l))
    return dirs, body.strip('\n')

def _false(v: str | None) -> bool: return v is not None and v.strip().strip('"\'').lower() == 'false'

def nb_title(nb, default: str) -> tuple[str, str]:
    "(title, description) of a notebook: front matter or the first `# Title` heading and the `> description` under it."
    for cell in nb.cells:
        src = cell.source.strip()
        if cell.cell_type == 'raw' and src.startswith('---'):
            fm = dict(re.findall(r'^(\w+):\s*(.+?)\s*$', src, re.M))
            if 'title' in fm: return fm['title'].strip('"\''), fm.get('description', '').strip('"\'')
        if cell.cell_type == 'markdown':
            m = re.search(r'^#\s+(.+?)\s*$', src, re.M)
            if m:
                d = re.search(r'^>\s*(.+?)\s*$', src[m.end():], re.M)
                return m.group(1), d.group(1) if d else ''
    return default, ''

# --------------------------------------------------------------------------- nbdev's processing of cells

_HIDE = {'hide', 'export', 'exporti', 'default_exp'}
_WIDGET = 'application/vnd.jupyter.widget-view+json'

def _def_names(source: str) -> list[str]:
    "Public functions and classes defined at the top of `source`, as `show_doc` names them (`Cls.meth` for @patch)."
    try: tree = ast.parse(source)
    except SyntaxError: return []
    names = []
    for o in tree.body:
        if not isinstance(o, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): continue
        if o.name.startswith('_') and not o.name.startswith('__'): continue
        nm = o.name
        decos = [ast.unparse(d) for d in getattr(o, 'decorator_list', [])]
        patched = any(d in ('patch', 'patch_to') or d.startswith(('patch(', 'patch_to(')) for d in decos)
        if patched and not isinstance(o, ast.ClassDef) and o.args.args:
            ann = o.args.args[0].annotation
            if ann is not None: nm = f'{ast.unparse(ann)}.{o.name}'
        names.append(nm)
    return names

def _shown_names(nb) -> set[str]:
    "Names already passed to `show_doc(...)` somewhere in the notebook."
    return {m.group(1) for c in nb.cells if c.cell_type == 'code'
            for m in re.finditer(r'^show_doc\(\s*([\w.]+)', c.source, re.M)}

def _autodoc_markdown(module: str, name: str, quiet: bool = False) -> str | None:
    "What `show_doc(module.name)` displays, or None when the module or name cannot be imported."
    try:
        from nbdev.showdoc import show_doc
        obj = importlib.import_module(module)
        for part in name.split('.'): obj = getattr(obj, part)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return show_doc(obj)._repr_markdown_()
    except Exception as e:  # a docs build never fails because one symbol can't be documented
        if not quiet:
            print(f'  note: no automatic show_doc for {module}.{name} ({type(e).__name__}: {e})', file=sys.stderr)
        return None

def _collapse_cr(text: str) -> str:
    "A stream as a terminal leaves it: of a line rewritten with `\\r` (progress bars) only the last version stays."
    lines = text.replace('\r\n', '\n').split('\n')
    return '\n'.join(l.rstrip('\r').rsplit('\r', 1)[-1] for l in lines)

_WIDGET_NOTE = '<p class="widget-note">An interactive widget: run this notebook in JupyterLab to use it.</p>'

def _display_cell(cell, dirs: dict, body: str):
    "The code cell as the docs show it (source without directives, outputs per directive), or None to leave it out."
    if dirs.keys() & _HIDE or _false(dirs.get('include')) or not body.strip(): return None
    cell.source, md = body, cell.setdefault('metadata', {})
    if _false(dirs.get('echo')) or re.search(r'^show_doc', body, re.M): md['docs_hide_input'] = True
    if 'exports' in dirs: md['docs_fold'] = 'Exported source'
    elif dirs.get('code-fold', '').strip('"\'').lower() in ('true', 'show'):
        md['docs_fold'] = dirs.get('code-summary', 'Code').strip('"\'')
    outs = [] if _false(dirs.get('output')) else cell.get('outputs', [])
    for i, o in enumerate(outs):
        if o.output_type == 'stream':
            o.text = _collapse_cr(o.text)
            if dirs.get('output', '').strip('"\'') == 'asis' and o.get('name') == 'stdout':  # printed markdown
                outs[i] = nbformat.v4.new_output('display_data', data={'text/markdown': o.text})
        elif _WIDGET in o.get('data', {}): o['data'] = {'text/html': _WIDGET_NOTE}
    cell.outputs = outs
    return None if md.get('docs_hide_input') and not outs else cell

def _autodocs(dirs: dict, body: str, lib_name: str | None, default_exp: str | None, shown: set) -> list:
    "show_doc cells for the public names an exported cell defines that the notebook does not show_doc itself."
    if not lib_name or not dirs.keys() & {'export', 'exports'} or 'hide' in dirs or _false(dirs.get('include')):
        return []
    target = (dirs.get('export') or dirs.get('exports') or default_exp or '').split()
    if not target: return []
    cells = []
    for nm in _def_names(body):
        if nm in shown or not (text := _autodoc_markdown(f'{lib_name}.{target[0]}', nm)): continue
        cells.append(nbformat.v4.new_code_cell(f'show_doc({nm})', metadata={'docs_hide_input': True},
                     outputs=[nbformat.v4.new_output('display_data', data={'text/markdown': text})],
                     id='autodoc-' + nm.replace('.', '-')))  # a fixed id keeps rebuilt pages identical
        shown.add(nm)
    return cells

def _show_doc_outputs(body: str, lib_name: str, default_exp: str | None) -> list:
    "What the `show_doc(name)` calls in `body` display, looked up in the notebook's module, then the package."
    outs = []
    for m in re.finditer(r'^show_doc\(\s*([\w.]+)', body, re.M):
        mods = ([f'{lib_name}.{default_exp}'] if default_exp else []) + [lib_name]
        text = next((t for mod in mods if (t := _autodoc_markdown(mod, m.group(1), quiet=True))), None)
        if text: outs.append(nbformat.v4.new_output('display_data', data={'text/markdown': text}))
        else: print(f'  note: show_doc({m.group(1)}) has no saved output and cannot be recreated', file=sys.stderr)
    return outs

def process_notebook(nb, lib_name: str | None = None, autodoc: bool = True):
    "A copy of `nb` prepared for display as `nbdev_docs` would: see the module docstring."
    nb = copy.deepcopy(nb)
    nb.metadata.pop('widgets', None)
    shown, default_exp, cells = _shown_names(nb), None, []
    for cell in nb.cells:
        if cell.cell_type == 'markdown':
            src = cell.source.strip()
            dash_heading = src.startswith('#') and src.endswith(' -') and '\n' not in src  # nbdev's rm_header_dash
            if not dash_heading: cells.append(cell)
        if cell.cell_type != 'code': continue  # raw cells (front matter) are not shown, as with nbdev + Quarto
        dirs, body = split_directives(cell.source)
        if dirs.get('default_exp'): default_exp = dirs['default_exp'].split()[0]
        docs = _autodocs(dirs, body, lib_name, default_exp, shown) if autodoc else []
        if autodoc and lib_name and not cell.get('outputs') and re.search(r'^show_doc\(', body, re.M):
            cell.outputs = _show_doc_outputs(body, lib_name, default_exp)  # a show_doc cell saved without output
        if (shown_cell := _display_cell(cell, dirs, body)) is not None: cells.append(shown_cell)
        cells += docs
    nb.cells = cells
    return nb

# --------------------------------------------------------------------------- markdown, math, anchors

def slugify(text: str) -> str:
    "An anchor id as Quarto makes it: lower case, spaces to `-`, punctuation other than `_ - .` dropped."
    text = html.unescape(re.sub(r'<[^>]+>', '', text)).strip().lower()
    text = re.sub(r'[^\w\s.-]', '', text)
    return re.sub(r'\s+', '-', text) or 'section'

def tex_to_html(tex: str, display: bool) -> str:
    "LaTeX as MathML (rendered by every current browser, no script) or, without latex2mathml, as escaped raw TeX."
    if _tex2mathml is not None:
        try: return _tex2mathml(tex.strip(), display='block' if display else 'inline')
        except Exception: pass
    d = '$$' if display else '$'
    cls = 'math display' if display else 'math'
    return f'<span class="{cls}">{d}{html.escape(tex)}{d}</span>'

class DocsRenderer(IPythonRenderer):
    "nbconvert's markdown renderer, with math as MathML and Quarto-style heading ids."
    def block_math(self, body): return tex_to_html(body, True)
    def inline_math(self, body): return tex_to_html(body, False)
    def latex_environment(self, name, body): return tex_to_html(f'\\begin{{{name}}}{body}\\end{{{name}}}', True)
    # nbconvert re-parses every inline tag to embed images, which turns `<a href=..>text</a>` into an empty link
    def inline_html(self, html_):
        return super().inline_html(html_) if '<img' in html_ else HTMLRenderer.inline_html(self, html_)
    def block_html(self, html_):
        return super().block_html(html_) if '<img' in html_ else HTMLRenderer.block_html(self, html_)
    def heading(self, text, level, **attrs):
        sid = slugify(text)
        jl = html.escape(html.unescape(re.sub(r'<[^>]+>', '', text)).strip().replace(' ', '-'), quote=True)
        # JupyterLab's id too (`Forward-noising`), so links written and tested in JupyterLab work here as well
        alias = f'<span class="jl-anchor" id="{jl}"></span>' if jl and jl != sid else ''
        return (f'<h{level} id="{sid}">{alias}{text}<a class="anchor-link" href="#{sid}" '
                f'aria-label="link to this section">#</a></h{level}>\n')

_re_pandoc_attrs = re.compile(r'\[([^\]]+)\]\(([^)\s]+)\)\{([^}]*)\}')

def _pandoc_links(md: str) -> str:
    "Quarto's `[text](url){target=... style=...}` (as in show_doc's source links) as plain HTML links."
    def sub(m):
        text, url, attrs = m.groups()
        url = url.removesuffix('#LNone')  # show_doc's link when it cannot tell the line
        tgt = ' target="_blank" rel="noopener"' if 'target=' in attrs else ''
        cls = ' class="source-link"' if text.strip() == 'source' else ''
        return f'<a href="{html.escape(url)}"{tgt}{cls}>{html.escape(text)}</a>'
    return _re_pandoc_attrs.sub(sub, md)

def markdown_to_html(source: str, attachments: dict | None = None, path: str = '') -> str:
    "Render notebook markdown (GitHub flavour + math) to HTML, embedding local images as data URIs."
    r = DocsRenderer(escape=False, embed_images=True, path=path, attachments=attachments or {})
    return MarkdownWithMath(renderer=r).render(_pandoc_links(source))

# --------------------------------------------------------------------------- the exporter

_CELLS_TEMPLATE = r"""{%- extends 'base.html.j2' -%}
{%- block header -%}{%- endblock header -%}
{%- block body_header -%}{%- endblock body_header -%}
{%- block body_footer -%}{%- endblock body_footer -%}
{%- block footer -%}{%- endblock footer -%}
{%- block input_group -%}
{%- if not cell.metadata.get('docs_hide_input') -%}
{%- if cell.metadata.get('docs_fold') -%}
<details class="code-fold"><summary>{{ cell.metadata.docs_fold | e }}</summary>{{ super() }}</details>
{%- else -%}{{ super() }}{%- endif -%}
{%- endif -%}
{%- endblock input_group -%}
"""

class DocsExporter(HTMLExporter):
    "nbconvert's JupyterLab HTML exporter, reduced to the cells, with our markdown renderer."
    @pass_context
    def markdown2html(self, context, source):
        cell = context.get('cell', {})
        path = context.get('resources', {}).get('metadata', {}).get('path', '')
        return markdown_to_html(source, cell.get('attachments', {}), path)

def make_exporter() -> DocsExporter:
    ex = DocsExporter(template_name='lab', extra_loaders=[DictLoader({'docs_cells.html.j2': _CELLS_TEMPLATE})],
                      template_file='docs_cells.html.j2')
    ex.exclude_input_prompt = ex.exclude_output_prompt = True
    ex.embed_images = True
    ex.log = logging.getLogger('build_docs.nbconvert')  # its "alternative text is missing" warning: it adds one itself
    ex.log.setLevel(logging.ERROR)
    return ex

# --------------------------------------------------------------------------- page assembly

_re_heading = re.compile(r'<h([1-6]) id="([^"]*)">(.*?)</h\1>', re.S)
_re_anchor = re.compile(r'<a\b[^>]*class="anchor-link"[^>]*>.*?</a>', re.S)

def _unique_ids(body: str) -> tuple[str, list[tuple[int, str, str]]]:
    "Make heading ids unique within a page; return the page and its (level, id, text) headings."
    seen, heads = {}, []
    def sub(m):
        lvl, sid, inner = m.groups()
        n = seen.get(sid, 0); seen[sid] = n + 1
        new = sid if n == 0 else f'{sid}-{n}'
        inner = inner.replace(f'href="#{sid}"', f'href="#{new}"')
        heads.append((int(lvl), new, _re_anchor.sub('', inner)))
        return f'<h{lvl} id="{new}">{inner}</h{lvl}>'
    return _re_heading.sub(sub, body), heads

def _fix_notebook_links(body: str, pages: dict[str, str]) -> str:
    "Links to `NN_name.ipynb` become links to its page."
    def sub(m):
        target, frag = m.group(2), m.group(3) or ''
        name = Path(target).name
        return f'{m.group(1)}{pages[name]}{frag}"' if name in pages else m.group(0)
    return re.sub(r'(href=")((?!https?:)[^"#]*\.ipynb)(#[^"]*)?"', sub, body)

_re_skip = re.compile(r'(<pre\b.*?</pre>|<a\b.*?</a>|<h[1-6]\b.*?</h[1-6]>)', re.S)

def _linkify(body: str, symbols: dict[str, str]) -> str:
    "Inline code naming an exported symbol (`Config`, `get_config()`) links to its documentation."
    if not symbols: return body
    def code(m):
        nm = m.group(1)
        return f'<a class="symbol" href="{symbols[nm]}">{m.group(0)}</a>' if nm in symbols else m.group(0)
    parts = _re_skip.split(body)
    return ''.join(p if i % 2 else re.sub(r'<code>([\w.]+)(?:\(\))?</code>', code, p) for i, p in enumerate(parts))

def load_symbols(lib_path: Path) -> dict[str, str]:
    "Short name -> `page.html#anchor` from nbdev's `_modidx.py` (read, not imported)."
    f = lib_path / '_modidx.py'
    if not f.exists(): return {}
    try: d = ast.literal_eval(f.read_text(encoding='utf-8').split('=', 1)[1])
    except Exception: return {}
    out, clash = {}, set()
    for mod, syms in d.get('syms', {}).items():
        for full, (url, _) in syms.items():
            short = full[len(mod) + 1:]
            if short.split('.')[-1].startswith('_'): continue
            if short in out and out[short] != url: clash.add(short)
            out[short] = url
    return {k: v for k, v in out.items() if k not in clash}

def _esc(s: str) -> str: return html.escape(s, quote=True)

def page_html(*, site_title: str, description: str, chapters: list[dict], current: int, body: str,
              headings: list, css: str, source_url: str | None) -> str:
    "One complete page: sidebar with the chapters (and this page's sections), the content, prev/next links."
    ch = chapters[current]
    items = []
    for i, c in enumerate(chapters):
        cur = ' class="current" aria-current="page"' if i == current else ''
        items.append(f'<li><a href="{c["page"]}"{cur}>{_esc(c["title"])}</a>')
        if i == current:
            subs = [f'<li><a href="#{sid}">{re.sub(r"<[^>]+>", "", txt).strip()}</a></li>'
                    for lvl, sid, txt in headings if lvl == 2]
            if subs: items.append('<ul class="toc">' + ''.join(subs) + '</ul>')
        items.append('</li>')
    prev_, next_ = (chapters[current - 1] if current > 0 else None), \
                   (chapters[current + 1] if current + 1 < len(chapters) else None)
    prev_link = f'<a class="prev" rel="prev" href="{prev_["page"]}">← {_esc(prev_["title"])}</a>' if prev_ else ''
    next_link = f'<a class="next" rel="next" href="{next_["page"]}">{_esc(next_["title"])} →</a>' if next_ else ''
    pager = (f'<nav class="pager" aria-label="previous and next chapter">{prev_link or "<span></span>"}'
             f'{next_link or "<span></span>"}</nav>')
    src = f' · <a href="{_esc(source_url)}">source notebook</a>' if source_url else ''
    title = site_title if ch['page'] == 'index.html' else f'{ch["title"]} – {site_title}'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{GENERATOR}">
<title>{_esc(title)}</title>
<meta name="description" content="{_esc(ch['description'] or description)}">
<link rel="stylesheet" href="{css}">
<link rel="icon" href="data:,">
</head>
<body>
<div class="layout">
<nav class="sidebar" aria-label="chapters">
<a class="site-title" href="index.html">{_esc(site_title)}</a>
<ol class="chapters">{''.join(items)}</ol>
</nav>
<main class="content">
{body}
{pager}
<footer>Rendered from <code>nbs/{_esc(ch['notebook'])}</code>{src}.</footer>
</main>
</div>
</body>
</html>
"""

_SITE_CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --accent:#1f6feb; --border:#dfe3ea; --code-bg:#f6f8fa; --side:17rem; }
* { box-sizing: border-box; }
html { scroll-padding-top: 1rem; }
body { margin:0; color:var(--fg);
  font:16px/1.6 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
a { color:var(--accent); text-decoration:none; } a:hover { text-decoration:underline; }
.layout { display:flex; min-height:100vh; }
.sidebar { position:sticky; top:0; align-self:flex-start; width:var(--side); flex:0 0 var(--side); height:100vh;
  overflow-y:auto; padding:1.25rem 1rem; border-right:1px solid var(--border); background:#fafbfc; font-size:.92rem; }
.site-title { display:block; font-weight:700; font-size:1.1rem; color:var(--fg); margin-bottom:1rem; }
.chapters { list-style:none; padding:0; margin:0; counter-reset:ch; }
.chapters > li { margin:.15rem 0; }
.chapters a { display:block; padding:.2rem .5rem; border-radius:6px; color:var(--fg); }
.chapters a.current { background:#e8f0fe; color:var(--accent); font-weight:600; }
.toc { list-style:none; padding-left:.9rem; margin:.2rem 0 .5rem; border-left:2px solid var(--border); }
.toc a { color:var(--muted); font-size:.88rem; padding:.1rem .5rem; }
.content { flex:1; min-width:0; max-width:70rem; padding:1.5rem 2.5rem 3rem; }
h1 { font-size:2.1rem; line-height:1.2; margin:.5rem 0 .75rem; }
h2 { margin-top:2.2rem; padding-bottom:.25rem; border-bottom:1px solid var(--border); }
h1,h2,h3,h4 { position:relative; }
.anchor-link { visibility:hidden; margin-left:.4rem; color:var(--muted); font-weight:400; }
h1:hover .anchor-link, h2:hover .anchor-link, h3:hover .anchor-link, h4:hover .anchor-link { visibility:visible; }
blockquote { margin:0 0 1rem; padding:.1rem 1rem; color:var(--muted); border-left:4px solid var(--border); }
code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace; font-size:.88em; }
:not(pre) > code { background:var(--code-bg); padding:.1em .3em; border-radius:4px; }
pre { margin:0; padding:.7rem .9rem; overflow-x:auto; font-size:.85rem; line-height:1.45;
  font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace; }
table { border-collapse:collapse; margin:1rem 0; font-size:.92rem; display:block; overflow-x:auto; }
th,td { border:1px solid var(--border); padding:.3rem .6rem; text-align:left; }
th { background:var(--code-bg); }
img { max-width:100%; height:auto; }
math[display="block"] { margin:1rem 0; font-size:1.1em; }
.math { font-family:ui-monospace,monospace; color:#6a3d9a; }
.jp-Cell { margin:.9rem 0; }
.jp-CodeCell .jp-InputArea { background:var(--code-bg); border:1px solid var(--border); border-radius:8px; }
.jp-CodeCell .highlight { background:transparent; }
.jp-OutputArea-output { margin:.35rem 0; overflow-x:auto; }
.jp-RenderedText pre { background:#fff; border-left:3px solid var(--border); padding:.35rem .8rem; }
.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"] pre { background:#fff5f5; border-left-color:#f3b5b5; }
.jp-RenderedMarkdown.jp-OutputArea-output { border:1px solid var(--border); border-radius:8px; padding:0 1rem .5rem;
  margin:1rem 0; box-shadow:0 1px 2px rgba(0,0,0,.04); }
.jp-RenderedMarkdown.jp-OutputArea-output > hr:first-child { display:none; }
.jp-RenderedMarkdown.jp-OutputArea-output pre { background:var(--code-bg); border-radius:6px; }
.jp-RenderedMarkdown.jp-OutputArea-output h3 { margin-top:.8rem; }
.source-link { float:right; font-size:.85rem; margin-top:.9rem; }
.jp-RenderedImage img { display:block; }
.jp-Collapser, .jp-InputPrompt, .jp-OutputPrompt { display:none; }
details.code-fold > summary { cursor:pointer; color:var(--muted); font-size:.9rem; margin-bottom:.3rem; }
.widget-note { color:var(--muted); font-style:italic; }
.pager { display:flex; justify-content:space-between; gap:1rem; margin-top:3rem; padding-top:1rem;
  border-top:1px solid var(--border); }
.pager a { padding:.5rem .8rem; border:1px solid var(--border); border-radius:8px; }
footer { margin-top:2rem; color:var(--muted); font-size:.85rem; }
@media (max-width: 900px) {
  .layout { display:block; }
  .sidebar { position:static; width:auto; height:auto; border-right:0; border-bottom:1px solid var(--border); }
  .toc { display:none; }
  .content { padding:1rem; }
}
"""

def read_settings(root: Path) -> dict:
    "The [DEFAULT] section of settings.ini (empty when there is none)."
    cp = configparser.ConfigParser(interpolation=None)
    f = root / 'settings.ini'
    if f.exists(): cp.read(f, encoding='utf-8')
    return dict(cp.defaults())

def build(nbs: Path = ROOT / 'nbs', out: Path = ROOT / 'docs', root: Path = ROOT, autodoc: bool = True,
          verbose: bool = True) -> list[Path]:
    "Render every notebook of `nbs` into a page of `out`; return the pages written."
    t0 = time.time()
    nbs, out = Path(nbs).resolve(), Path(out).resolve()
    settings = read_settings(root)
    lib_name = settings.get('lib_name')
    site_title = settings.get('title') or lib_name or root.name
    git_url, branch = settings.get('git_url', '').rstrip('/'), settings.get('branch', 'main')
    rel_nbs = nbs.relative_to(root).as_posix() if nbs.is_relative_to(root) else None
    paths = notebooks_in_order(nbs)
    if not paths: sys.exit(f'No notebooks in {nbs}: nothing to build.')
    if autodoc and lib_name and str(root) not in sys.path: sys.path.insert(0, str(root))
    chapters = []
    for p in paths:
        nb = nbformat.read(p, as_version=4)
        title, desc = nb_title(nb, p.stem)
        chapters.append(dict(notebook=p.name, page=page_name(p), title=title, description=desc, nb=nb, path=p))
    pages = {c['notebook']: c['page'] for c in chapters}
    if len(set(pages.values())) != len(pages):
        sys.exit(f'Two notebooks map to the same page: {pages}. Rename one of them.')

    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob('*.html'):  # stale pages of renamed notebooks (only pages this script wrote)
        if GENERATOR in old.read_text(encoding='utf-8', errors='replace')[:2000]: old.unlink()
    (out / '_static').mkdir(exist_ok=True)
    pyg = HtmlFormatter(style='default').get_style_defs('.highlight')
    (out / '_static' / 'site.css').write_text(_SITE_CSS + '\n' + pyg + '\n', encoding='utf-8')
    (out / '.nojekyll').write_text('', encoding='utf-8')

    exporter, bodies = make_exporter(), []
    for c in chapters:
        nb = process_notebook(c['nb'], lib_name, autodoc)
        body, _ = exporter.from_notebook_node(nb, resources={'metadata': {'path': str(c['path'].parent),
                                                                          'name': c['path'].stem}})
        body = _fix_notebook_links(body, pages)
        body, heads = _unique_ids(body)
        bodies.append((body, heads))
    ids = {c['page']: {h[1] for h in heads} for c, (_, heads) in zip(chapters, bodies)}
    symbols = {k: v for k, v in load_symbols(root / (settings.get('lib_path') or lib_name or '')).items()
               if v.split('#')[0] in ids and (('#' not in v) or v.split('#', 1)[1] in ids[v.split('#')[0]])}
    written = []
    for i, (c, (body, heads)) in enumerate(zip(chapters, bodies)):
        body = _linkify(body, symbols)
        src = f'{git_url}/blob/{branch}/{rel_nbs}/{c["notebook"]}' if git_url and rel_nbs else None
        page = page_html(site_title=site_title, description=settings.get('description', ''), chapters=chapters,
                         current=i, body=body, headings=heads, css='_static/site.css', source_url=src)
        (out / c['page']).write_text(page, encoding='utf-8')
        written.append(out / c['page'])
    if verbose:
        math = 'MathML' if _tex2mathml else 'raw TeX (pip install latex2mathml for rendered math)'
        print(f'docs: {len(written)} pages in {out} ({time.time() - t0:.1f} s; math as {math})')
        for c in chapters: print(f'  {c["page"]:<24} {c["title"]}')
    return written

# --------------------------------------------------------------------------- README from nbs/index.ipynb

def _rebase_markdown(md: str, prefix: str) -> str:
    "Relative link and image targets in notebook markdown, made relative to the repository root instead."
    def sub(m):
        target = m.group(2)
        if re.match(r'^([a-z][\w+.-]*:|/|#)', target, re.I): return m.group(0)
        return f'{m.group(1)}{prefix}/{target}{m.group(3)}'
    return re.sub(r'(\]\()([^)\s]+)(\s*(?:"[^"]*")?\))', sub, md)

def write_readme(index_nb: Path = ROOT / 'nbs' / 'index.ipynb', readme: Path = ROOT / 'README.md',
                 images: Path = ROOT / 'docs' / 'images', lib_name: str | None = None) -> Path:
    "README.md from the index notebook: markdown as is, code as python blocks, outputs as text or saved images."
    nb = process_notebook(nbformat.read(index_nb, as_version=4), lib_name, autodoc=False)
    rel_nbs = Path(os.path.relpath(index_nb.parent.resolve(), readme.parent.resolve())).as_posix()
    images.mkdir(parents=True, exist_ok=True)
    for old in images.glob('readme_*'): old.unlink()
    parts, n_img = [f'<!-- WARNING: generated from {rel_nbs}/{index_nb.name} by `python tools/build_docs.py --readme`; '
                    f'edit the notebook, not this file. -->'], 0
    for cell in nb.cells:
        if cell.cell_type == 'markdown':
            parts.append(_rebase_markdown(cell.source, rel_nbs)); continue
        if not cell.metadata.get('docs_hide_input'): parts.append(f'```python\n{cell.source}\n```')
        for out in cell.get('outputs', []):
            if out.output_type == 'stream' and out.get('name') == 'stdout':
                parts.append(f'```\n{out.text.rstrip()}\n```'); continue
            data = out.get('data', {})
            img = next((m for m in ('image/png', 'image/jpeg', 'image/svg+xml') if m in data), None)
            if 'text/markdown' in data: parts.append(_pandoc_links(data['text/markdown']))
            elif img:
                n_img += 1
                ext = {'image/png': 'png', 'image/jpeg': 'jpg', 'image/svg+xml': 'svg'}[img]
                f = images / f'readme_{n_img}.{ext}'
                if img == 'image/svg+xml': f.write_text(data[img], encoding='utf-8')
                else: f.write_bytes(base64.b64decode(data[img]))
                parts.append(f'![]({Path(os.path.relpath(f.resolve(), readme.parent.resolve())).as_posix()})')
            elif 'text/plain' in data: parts.append(f'```\n{data["text/plain"].rstrip()}\n```')
    readme.write_text('\n\n'.join(p.strip('\n') for p in parts if p.strip()) + '\n', encoding='utf-8')
    print(f'README: {readme} from {index_nb.name} ({n_img} images in {images})')
    return readme

# --------------------------------------------------------------------------- command line

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--nbs', type=Path, default=ROOT / 'nbs', help='folder of notebooks (default: nbs/)')
    ap.add_argument('--out', type=Path, default=ROOT / 'docs', help='folder to write the site to (default: docs/)')
    ap.add_argument('--readme', nargs='?', type=Path, const=ROOT / 'README.md', metavar='PATH',
                    help='also write README.md (or PATH) from nbs/index.ipynb, its images into <out>/images/')
    ap.add_argument('--no-autodoc', action='store_true',
                    help="don't add show_doc for exported names that lack one (skips importing the package)")
    a = ap.parse_args(argv)
    build(a.nbs, a.out, autodoc=not a.no_autodoc)
    if a.readme:
        idx = a.nbs / 'index.ipynb'
        if not idx.exists(): sys.exit(f'--readme needs {idx}; write the index notebook first.')
        write_readme(idx, a.readme, a.out / 'images', lib_name=read_settings(ROOT).get('lib_name'))

if __name__ == '__main__': main()
