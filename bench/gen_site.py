#!/usr/bin/env python3
"""Generate a synthetic blog for the build benchmark.

    python bench/gen_site.py --posts N --out DIR [--seed 1]

writes the SAME posts three times:

    DIR/o2m/       o2m.toml + content/YYYY/slug.md (bundles: content/YYYY/slug/index.md + PNGs)
    DIR/pelican/   pelicanconf.py + content/*.md (bundle images in content/images/<slug>/)
    DIR/hugo/      hugo.toml + content/posts/*.md (bundles: content/posts/<slug>/index.md)
                   + a minimal layouts/ (no theme)
    DIR/manifest.json   one record per post (slug, year, kind, ...) for build_bench.py

Output is fully determined by --posts and --seed (a seeded random.Random; no
clock, no hash randomisation), so every tool sees identical posts and two runs
with the same arguments produce byte-identical trees.

Post mix: ~87% articles of 300-800 words (headings, emphasis, inline links and
code, lists, occasional tables and footnotes, 0-3 fenced code blocks in
python/js/rust/bash/json/go/c), ~10% short untitled notes, ~3% page bundles
(an article in a folder with 1-2 tiny generated PNGs referenced by relative
path). Dates are spread over 8 years, tags come from a pool of 50.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import shutil
import struct
import sys
import zlib
from pathlib import Path

GENERATOR_VERSION = 2  # bump when the output for a given (posts, seed) changes

# --------------------------------------------------------------------------
# vocabulary

WORDS = """
the of and to a in is that it for on with as was by this be are from at or an
have not but which they one all were their there can more had has been would
when we what about so some into them if time only other its out could then
these two may than first also new any like very after most where now over such
our through just how well even back much before those many because way under
same while each should work people make three still between never without
system small world large often find place every again part another light river
garden window morning evening winter summer letter question answer reason
kitchen station bridge mountain forest harbour island market library museum
theatre village street corner table paper pencil notebook camera bicycle train
coffee bread market weather season journey history language memory pattern
signal network server client browser compiler function variable module package
version release build cache index render template layout feed archive friend
neighbour circle message invite token audience private public draft review
quietly slowly carefully rather almost perhaps usually simply finally clearly
bright quiet narrow wide heavy gentle patient curious honest simple careful
useful strange familiar distant ancient modern tiny enormous warm cold green
blue grey golden silver wooden broken hidden open closed early late
walk write read build carry follow notice remember forget borrow return repair
measure compare explain imagine describe collect gather publish share wander
linger gather sketch photograph cook bake plant prune water harvest listen
watch count weigh sort fold stitch paint sand varnish sharpen test deploy
refactor profile benchmark document migrate upgrade backup restore
afternoon lantern harvest orchard meadow pebble shoreline valley ridge canyon
glacier marsh hedge lane courtyard attic cellar workshop studio balcony
porch staircase chimney kettle teapot saucepan skillet oven recipe dough flour
yeast butter honey lemon pepper garlic onion tomato basil thyme rosemary
""".split()

# dedupe while keeping order (a stable list keeps output deterministic)
WORDS = list(dict.fromkeys(WORDS))
# Zipf-ish weights: early (function) words are much more frequent
_CUM = []
_acc = 0.0
for _i in range(len(WORDS)):
    _acc += 1.0 / (_i + 8)
    _CUM.append(_acc)

CONTENT_WORDS = WORDS[120:]

TAG_POOL = """
python rust go javascript web css html linux debian networking privacy
federation friends photography travel cooking baking gardening books music
film hiking cycling running weather history language maths physics astronomy
birds trees coffee tea woodworking repair electronics keyboards typography
design writing notes journal family work tools editors terminal
static-sites performance
""".split()
assert len(TAG_POOL) == 50, len(TAG_POOL)

LINK_HOSTS = [
    "https://example.org/", "https://docs.example.com/", "https://blog.example.net/",
    "https://wiki.example.org/wiki/", "https://news.example.com/item/",
]

IDENTS = [
    "count", "total", "items", "buffer", "result", "config", "path", "name",
    "value", "entry", "record", "queue", "node", "cursor", "offset", "limit",
    "width", "height", "index", "payload", "header", "token", "session", "page",
    "post", "feed", "cache", "digest", "slug", "tag",
]


class Gen:
    def __init__(self, seed: int):
        self.r = random.Random(seed)

    # ---------------------------------------------------------- prose

    def word(self) -> str:
        return self.r.choices(WORDS, cum_weights=_CUM, k=1)[0]

    def words(self, n: int) -> list[str]:
        return self.r.choices(WORDS, cum_weights=_CUM, k=n)

    def cword(self) -> str:
        return self.r.choice(CONTENT_WORDS)

    def ident(self) -> str:
        r = self.r
        a = r.choice(IDENTS)
        if r.random() < 0.5:
            a = f"{a}_{r.choice(IDENTS)}"
        return a

    def sentence(self, inline: bool = True) -> tuple[str, int]:
        """Return (markdown sentence, number of prose words)."""
        r = self.r
        n = r.randint(6, 20)
        ws = self.words(n)
        # sprinkle content words so sentences are not all function words
        for k in range(r.randint(1, 4)):
            ws[r.randrange(n)] = self.cword()
        if inline:
            roll = r.random()
            if roll < 0.10 and n > 4:
                i = r.randrange(n - 2)
                ws[i] = f"*{ws[i]}*"
            elif roll < 0.16 and n > 4:
                i = r.randrange(n - 2)
                ws[i] = f"**{ws[i]} {ws[i + 1]}**"
                ws[i + 1] = ""
            elif roll < 0.24:
                i = r.randrange(n)
                ws[i] = f"`{self.ident()}()`"
            elif roll < 0.36:
                i = r.randrange(max(1, n - 3))
                k = r.randint(1, 3)
                text = " ".join(w for w in ws[i:i + k] if w)
                url = r.choice(LINK_HOSTS) + "-".join(self.cword() for _ in range(r.randint(1, 3)))
                ws[i] = f"[{text}]({url})"
                for j in range(i + 1, min(n, i + k)):
                    ws[j] = ""
        ws = [w for w in ws if w]
        if len(ws) > 8 and r.random() < 0.3:
            ws[r.randrange(2, len(ws) - 2)] += ","
        s = " ".join(ws)
        k = next(j for j, ch in enumerate(s) if ch.isalpha())
        s = s[:k] + s[k].upper() + s[k + 1:]
        s += r.choice(".....?!")
        return s, n

    def paragraph(self, target: int) -> tuple[str, int]:
        out, n = [], 0
        while n < target:
            s, k = self.sentence()
            out.append(s)
            n += k
        return " ".join(out), n

    def title(self) -> str:
        r = self.r
        ws = [self.cword() for _ in range(r.randint(2, 6))]
        if r.random() < 0.4:
            ws.insert(r.randrange(len(ws)), r.choice(["and", "of", "in", "for", "with", "on"]))
        t = " ".join(ws)
        return t[0].upper() + t[1:]

    # ---------------------------------------------------------- code

    def code_block(self) -> str:
        r = self.r
        lang = r.choice(["python", "python", "js", "rust", "bash", "json", "go", "c"])
        body = getattr(self, "_code_" + lang)()
        return f"```{lang}\n{body.rstrip()}\n```"

    def _code_python(self) -> str:
        r = self.r
        f, a, b, n = self.ident(), self.ident(), self.ident(), r.randint(2, 999)
        t = r.randrange(3)
        if t == 0:
            return (
                f"import json\nfrom pathlib import Path\n\n\n"
                f"def {f}({a}: Path, limit: int = {n}) -> list[dict]:\n"
                f'    """Load at most `limit` records from {a}."""\n'
                f"    {b} = []\n"
                f"    for line in {a}.read_text().splitlines():\n"
                f"        if len({b}) >= limit:\n"
                f"            break\n"
                f"        {b}.append(json.loads(line))\n"
                f"    return {b}\n"
            )
        if t == 1:
            cls = "".join(p.capitalize() for p in f.split("_"))
            return (
                f"class {cls}:\n"
                f"    def __init__(self, {a}, {b}={n}):\n"
                f"        self.{a} = {a}\n"
                f"        self.{b} = {b}\n\n"
                f"    def __repr__(self):\n"
                f"        return f\"{cls}({{self.{a}!r}}, {{self.{b}}})\"\n\n\n"
                f"print({cls}('{self.cword()}'))\n"
            )
        return (
            f"{a} = {{{', '.join(repr(self.cword()) + ': ' + str(r.randint(0, 99)) for _ in range(r.randint(2, 4)))}}}\n"
            f"{b} = sorted({a}.items(), key=lambda kv: kv[1], reverse=True)\n"
            f"for key, {f} in {b}[:{r.randint(1, 9)}]:\n"
            f"    print(f\"{{key:>{r.randint(8, 20)}}} {{{f}:{r.randint(3, 6)}d}}\")\n"
        )

    def _code_js(self) -> str:
        r = self.r
        f = "".join(p.capitalize() if i else p for i, p in enumerate(self.ident().split("_")))
        a = self.ident().replace("_", "")
        t = r.randrange(2)
        if t == 0:
            return (
                f"export async function {f}({a}, {{ retries = {r.randint(1, 5)} }} = {{}}) {{\n"
                f"  for (let i = 0; i < retries; i++) {{\n"
                f"    const res = await fetch(`/api/{self.cword()}/${{{a}}}`);\n"
                f"    if (res.ok) return res.json();\n"
                f"    await new Promise((r) => setTimeout(r, {r.randint(50, 2000)} * (i + 1)));\n"
                f"  }}\n"
                f"  throw new Error('gave up on ' + {a});\n"
                f"}}\n"
            )
        return (
            f"const {a} = document.querySelectorAll('.{self.cword()}');\n"
            f"{a}.forEach((el, i) => {{\n"
            f"  el.addEventListener('click', () => {{\n"
            f"    el.classList.toggle('{self.cword()}');\n"
            f"    console.log('{f}', i, {r.randint(0, 999)});\n"
            f"  }});\n"
            f"}});\n"
        )

    def _code_rust(self) -> str:
        r = self.r
        f, a = self.ident(), self.ident()
        st = "".join(p.capitalize() for p in self.ident().split("_"))
        return (
            f"#[derive(Debug, Clone)]\n"
            f"pub struct {st} {{\n"
            f"    pub {a}: Vec<u{r.choice([8, 16, 32, 64])}>,\n"
            f"    pub name: String,\n"
            f"}}\n\n"
            f"impl {st} {{\n"
            f"    pub fn {f}(&self) -> usize {{\n"
            f"        self.{a}.iter().filter(|x| **x > {r.randint(0, 200)}).count()\n"
            f"    }}\n"
            f"}}\n"
        )

    def _code_bash(self) -> str:
        r = self.r
        d = self.cword()
        t = r.randrange(2)
        if t == 0:
            return (
                f"#!/usr/bin/env bash\n"
                f"set -euo pipefail\n"
                f"for f in ~/{d}/*.{r.choice(['md', 'txt', 'log', 'jpg'])}; do\n"
                f"    echo \"processing $f\"\n"
                f"    gzip -{r.randint(1, 9)} --keep \"$f\"\n"
                f"done\n"
            )
        return (
            f"$ du -sh ~/{d}\n{r.randint(1, 900)}M\t/home/me/{d}\n"
            f"$ find ~/{d} -name '*.{self.cword()[:3]}' -mtime -{r.randint(1, 30)} | wc -l\n"
            f"{r.randint(0, 5000)}\n"
        )

    def _code_json(self) -> str:
        r = self.r
        obj = {
            self.ident(): r.randint(0, 10000),
            "name": f"{self.cword()}-{self.cword()}",
            "enabled": r.random() < 0.5,
            "tags": [self.r.choice(TAG_POOL) for _ in range(r.randint(1, 3))],
            self.ident(): {"x": round(r.uniform(-90, 90), 4), "y": round(r.uniform(-180, 180), 4)},
        }
        return json.dumps(obj, indent=2)

    def _code_go(self) -> str:
        r = self.r
        f = "".join(p.capitalize() for p in self.ident().split("_"))
        a = self.ident().replace("_", "")
        return (
            f"package main\n\n"
            f"import (\n\t\"fmt\"\n\t\"strings\"\n)\n\n"
            f"func {f}({a} []string) map[string]int {{\n"
            f"\tcounts := make(map[string]int, {r.randint(4, 256)})\n"
            f"\tfor _, w := range {a} {{\n"
            f"\t\tcounts[strings.ToLower(w)]++\n"
            f"\t}}\n"
            f"\treturn counts\n"
            f"}}\n\n"
            f"func main() {{\n"
            f"\tfmt.Println({f}(strings.Fields(\"{' '.join(self.words(4))}\")))\n"
            f"}}\n"
        )

    def _code_c(self) -> str:
        r = self.r
        f, a = self.ident(), self.ident()
        return (
            f"#include <stdio.h>\n#include <stddef.h>\n\n"
            f"static size_t {f}(const int *{a}, size_t n)\n"
            f"{{\n"
            f"    size_t hits = 0;\n"
            f"    for (size_t i = 0; i < n; i++)\n"
            f"        if ({a}[i] % {r.randint(2, 17)} == 0)\n"
            f"            hits++;\n"
            f"    return hits;\n"
            f"}}\n\n"
            f"int main(void)\n{{\n"
            f"    int v[] = {{{', '.join(str(r.randint(0, 99)) for _ in range(r.randint(3, 8)))}}};\n"
            f"    printf(\"%zu\\n\", {f}(v, sizeof v / sizeof v[0]));\n"
            f"    return 0;\n"
            f"}}\n"
        )

    # ---------------------------------------------------------- other blocks

    def bullet_list(self) -> str:
        r = self.r
        ordered = r.random() < 0.3
        items = []
        for i in range(r.randint(3, 6)):
            s, _ = self.sentence()
            items.append(f"{i + 1}. {s}" if ordered else f"- {s}")
        return "\n".join(items)

    def table(self) -> str:
        r = self.r
        cols = [self.cword().capitalize() for _ in range(r.randint(2, 4))]
        rows = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---"] * len(cols)) + "|"]
        for _ in range(r.randint(2, 6)):
            cells = [self.cword() if j == 0 else str(r.randint(0, 500)) for j in range(len(cols))]
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)

    # ---------------------------------------------------------- posts

    def article_body(self, n_words: int, images: list[tuple[str, str]]) -> tuple[str, bool]:
        """Markdown body of about n_words prose words; returns (body, has_code)."""
        r = self.r
        blocks: list[str] = []
        n_code = r.choices([0, 1, 2, 3], weights=[35, 35, 20, 10])[0]
        want_table = r.random() < 0.12
        want_list = r.random() < 0.45
        n_foot = r.choices([0, 1, 2], weights=[80, 14, 6])[0]
        n_head = r.randint(0, 3) if n_words > 450 else r.randint(0, 1)
        # pre-choose the paragraph positions where extra blocks go
        paragraphs: list[str] = []
        words = 0
        while words < n_words:
            p, k = self.paragraph(min(r.randint(40, 110), max(6, n_words - words)))
            paragraphs.append(p)
            words += k
        np_ = len(paragraphs)
        extras: dict[int, list[str]] = {}

        def put(block: str) -> None:
            extras.setdefault(r.randrange(np_), []).append(block)

        for _ in range(n_code):
            put(self.code_block())
        if want_table:
            put(self.table())
        if want_list:
            put(self.bullet_list())
        for k, (name, alt) in enumerate(images):
            put(f"![{alt}]({name})")
        foot_defs = []
        for k in range(n_foot):
            i = r.randrange(np_)
            paragraphs[i] = paragraphs[i].rstrip(".?!") + f"[^{k + 1}]."
            s, _ = self.sentence(inline=False)
            foot_defs.append(f"[^{k + 1}]: {s}")
        heads = set(r.sample(range(1, np_), min(n_head, np_ - 1))) if np_ > 1 else set()
        for i, p in enumerate(paragraphs):
            if i in heads:
                blocks.append("## " + self.title())
            blocks.append(p)
            blocks.extend(extras.get(i, []))
        blocks.extend(foot_defs)
        return "\n\n".join(blocks) + "\n", n_code > 0


def png(width: int, height: int, rng: random.Random) -> bytes:
    """A tiny valid RGB PNG: a two-colour gradient, different per call."""
    c1 = [rng.randrange(256) for _ in range(3)]
    c2 = [rng.randrange(256) for _ in range(3)]
    raw = bytearray()
    for y in range(height):
        raw.append(0)  # filter: none
        for x in range(width):
            t = (x + y) / (width + height - 2)
            raw.extend(int(a + (b - a) * t) for a, b in zip(c1, c2))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")


def q(s: str) -> str:
    """YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(s, ensure_ascii=False)


def make_posts(n: int, seed: int) -> list[dict]:
    g = Gen(seed)
    r = g.r
    start = dt.datetime(2018, 1, 1, tzinfo=dt.timezone.utc)
    span = int(dt.timedelta(days=8 * 365).total_seconds())
    posts = []
    used: set[str] = set()
    for i in range(n):
        roll = r.random()
        kind = "note" if roll < 0.10 else "bundle" if roll < 0.13 else "article"
        date = start + dt.timedelta(seconds=r.randrange(span) // 60 * 60)
        tags = sorted(r.sample(TAG_POOL, r.randint(1, 4)))
        images: list[tuple[str, str]] = []
        if kind == "bundle":
            images = [("photo.png", " ".join(g.words(3)))]
            if r.random() < 0.5:
                images.append(("detail.png", " ".join(g.words(2))))
        if kind == "note":
            title = None
            body, _ = g.paragraph(r.randint(30, 120))
            if r.random() < 0.3:
                body += "\n\n" + g.paragraph(r.randint(20, 60))[0]
            body += "\n"
            has_code = False
            summary = None
        else:
            title = g.title()
            body, has_code = g.article_body(r.randint(300, 800), images)
            summary = g.sentence(inline=False)[0]
        base = "-".join(w.lower() for w in (title or "note").split()[:5])
        slug = f"{base}-{i + 1}"
        assert slug not in used
        used.add(slug)
        pngs = [(name, png(r.randint(8, 32), r.randint(8, 24), r)) for name, _ in images]
        posts.append(dict(i=i, kind=kind, slug=slug, title=title, date=date, tags=tags,
                          summary=summary, body=body, has_code=has_code, images=pngs))
    return posts


# --------------------------------------------------------------------------
# writers

def _write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")


def yaml_front(p: dict) -> str:
    lines = ["---"]
    if p["title"]:
        lines.append(f"title: {q(p['title'])}")
    lines.append(f"date: {p['date'].isoformat()}")
    lines.append("tags: [" + ", ".join(q(t) for t in p["tags"]) + "]")
    if p["summary"]:
        lines.append(f"summary: {q(p['summary'])}")
    return "\n".join(lines)


O2M_TOML = """\
[site]
name = "Bench site"
author = "Bench"
url = "https://bench.example/"
language = "en"
timezone = "UTC"
default_audience = "public"
"""


def write_o2m(root: Path, posts: list[dict]) -> None:
    _write(root / "o2m.toml", O2M_TOML)
    for p in posts:
        text = yaml_front(p) + "\naudience: public\n---\n\n" + p["body"]
        year = f"{p['date'].year:04d}"
        if p["images"]:
            d = root / "content" / year / p["slug"]
            _write(d / "index.md", text)
            for name, data in p["images"]:
                _write(d / name, data)
        else:
            _write(root / "content" / year / f"{p['slug']}.md", text)


PELICANCONF = """\
# Generated by bench/gen_site.py -- Pelican settings for the build benchmark.
AUTHOR = "Bench"
SITENAME = "Bench site"
SITEURL = "https://bench.example"
FEED_DOMAIN = SITEURL
PATH = "content"
TIMEZONE = "UTC"
DEFAULT_LANG = "en"
DEFAULT_DATE_FORMAT = "%Y-%m-%d"
THEME = "notmyidea"  # Pelican's default theme
DEFAULT_PAGINATION = 20
STATIC_PATHS = ["images"]
RELATIVE_URLS = False

# Feeds stay on (o2m writes feeds too): Pelican's defaults are the all-posts
# Atom feed and one Atom feed per category; add one per tag, like the others.
FEED_ALL_ATOM = "feeds/all.atom.xml"
CATEGORY_FEED_ATOM = "feeds/{slug}.atom.xml"
TAG_FEED_ATOM = "feeds/tag-{slug}.atom.xml"

# Pygments highlighting via codehilite, plus extra (fenced code, tables,
# footnotes, ...) and toc (heading ids), comparable to o2m's and Hugo's work.
MARKDOWN = {
    "extension_configs": {
        "markdown.extensions.codehilite": {"css_class": "highlight"},
        "markdown.extensions.extra": {},
        "markdown.extensions.meta": {},
        "markdown.extensions.toc": {},
    },
    "output_format": "html5",
}

# Warm-cache setup: a cold build (cache/ deleted) writes the reader cache,
# later builds load it and re-read only files whose mtime changed.
CACHE_CONTENT = True
LOAD_CONTENT_CACHE = True
CONTENT_CACHING_LAYER = "reader"
CHECK_MODIFIED_METHOD = "mtime"
CACHE_PATH = "cache"
"""


def write_pelican(root: Path, posts: list[dict]) -> None:
    _write(root / "pelicanconf.py", PELICANCONF)
    for p in posts:
        title = p["title"]
        if not title:  # Pelican requires a title: use the note's first words
            plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", p["body"].split("\n")[0])
            first = [w.strip("*`().,?!") for w in plain.split()[:6]]
            title = " ".join(w for w in first if w) or "Note"
        head = [
            f"Title: {title}",
            f"Date: {p['date'].strftime('%Y-%m-%d %H:%M')}",
            f"Tags: {', '.join(p['tags'])}",
            f"Slug: {p['slug']}",
        ]
        if p["summary"]:
            head.append(f"Summary: {p['summary']}")
        body = p["body"]
        for name, data in p["images"]:
            rel = f"images/{p['slug']}/{name}"
            _write(root / "content" / rel, data)
            body = body.replace(f"]({name})", f"]({{static}}/{rel})")
        _write(root / "content" / f"{p['slug']}.md", "\n".join(head) + "\n\n" + body)


HUGO_TOML = """\
baseURL = "https://bench.example/"
languageCode = "en"
title = "Bench site"
timeZone = "UTC"
enableRobotsTXT = false

[taxonomies]
tag = "tags"

[params]
author = "Bench"

# feeds: same item count as Pelican's FEED_MAX_ITEMS default (100)
[services.rss]
limit = 100

[markup.highlight]
codeFences = true
noClasses = false
guessSyntax = false

[markup.tableOfContents]
startLevel = 2
endLevel = 3
"""

HUGO_LAYOUTS = {
    "_default/baseof.html": """\
<!DOCTYPE html>
<html lang="{{ site.LanguageCode }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ if .IsHome }}{{ site.Title }}{{ else }}{{ with .Title }}{{ . }}{{ else }}Note{{ end }} | {{ site.Title }}{{ end }}</title>
{{ range .AlternativeOutputFormats -}}
<link rel="{{ .Rel }}" type="{{ .MediaType.Type }}" href="{{ .Permalink }}">
{{ end -}}
</head>
<body>
<header><a href="{{ site.Home.RelPermalink }}">{{ site.Title }}</a> <a href="{{ "tags/" | relURL }}">tags</a></header>
<main>
{{ block "main" . }}{{ end }}
</main>
<footer>{{ site.Params.author }}</footer>
</body>
</html>
""",
    "_default/single.html": """\
{{ define "main" }}
<article>
{{ with .Title }}<h1>{{ . }}</h1>{{ end }}
<p><time datetime="{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}">{{ .Date.Format "2006-01-02" }}</time>
{{ with .GetTerms "tags" }} &middot; {{ range . }}<a href="{{ .RelPermalink }}">{{ .LinkTitle }}</a> {{ end }}{{ end }}</p>
{{ .Content }}
</article>
{{ end }}
""",
    "_default/list.html": """\
{{ define "main" }}
<h1>{{ .Title }}</h1>
{{ $pag := .Paginate .Pages 20 }}
{{ range $pag.Pages }}
<article>
<h2><a href="{{ .RelPermalink }}">{{ with .Title }}{{ . }}{{ else }}{{ .Date.Format "2006-01-02 15:04" }}{{ end }}</a></h2>
<p><time>{{ .Date.Format "2006-01-02" }}</time></p>
{{ if .IsPage }}<div>{{ .Summary }}</div>{{ end }}
</article>
{{ end }}
<nav>{{ with $pag.Prev }}<a href="{{ .URL }}">newer</a>{{ end }} {{ with $pag.Next }}<a href="{{ .URL }}">older</a>{{ end }}</nav>
{{ end }}
""",
    "index.html": """\
{{ define "main" }}
{{/* every regular page is a post; a `where` filter here would be re-run for each of the ~500 pager pages */}}
{{ $pag := .Paginate site.RegularPages 20 }}
{{ range $pag.Pages }}
<article>
<h2><a href="{{ .RelPermalink }}">{{ with .Title }}{{ . }}{{ else }}{{ .Date.Format "2006-01-02 15:04" }}{{ end }}</a></h2>
<p><time>{{ .Date.Format "2006-01-02" }}</time></p>
<div>{{ .Summary }}</div>
</article>
{{ end }}
<nav>{{ with $pag.Prev }}<a href="{{ .URL }}">newer</a>{{ end }} {{ with $pag.Next }}<a href="{{ .URL }}">older</a>{{ end }}</nav>
{{ end }}
""",
}


def write_hugo(root: Path, posts: list[dict], hugo_pagination: str) -> None:
    conf = HUGO_TOML
    if hugo_pagination == "new":
        conf += "\n[pagination]\npagerSize = 20\n"
    else:  # top-level key: must come before the first table
        conf = conf.replace("enableRobotsTXT = false\n", "enableRobotsTXT = false\npaginate = 20\n")
    _write(root / "hugo.toml", conf)
    for rel, text in HUGO_LAYOUTS.items():
        _write(root / "layouts" / rel, text)
    for p in posts:
        text = yaml_front(p) + "\n---\n\n" + p["body"]
        if p["images"]:
            d = root / "content" / "posts" / p["slug"]
            _write(d / "index.md", text)
            for name, data in p["images"]:
                _write(d / name, data)
        else:
            _write(root / "content" / "posts" / f"{p['slug']}.md", text)


def manifest(posts: list[dict], seed: int) -> dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "posts": len(posts),
        "seed": seed,
        "words": sum(len(p["body"].split()) for p in posts),
        "items": [
            {
                "slug": p["slug"], "year": p["date"].year, "kind": p["kind"],
                "has_code": p["has_code"], "title": p["title"],
                "footnotes": "[^1]" in p["body"], "images": [n for n, _ in p["images"]],
                "o2m": (f"content/{p['date'].year:04d}/{p['slug']}/index.md" if p["images"]
                        else f"content/{p['date'].year:04d}/{p['slug']}.md"),
                "pelican": f"content/{p['slug']}.md",
                "hugo": (f"content/posts/{p['slug']}/index.md" if p["images"]
                         else f"content/posts/{p['slug']}.md"),
            }
            for p in posts
        ],
    }


def generate(n: int, out: Path, seed: int = 1, hugo_pagination: str = "auto") -> dict:
    if hugo_pagination == "auto":
        hugo_pagination = detect_hugo_pagination()
    posts = make_posts(n, seed)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("o2m", "pelican", "hugo"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    write_o2m(out / "o2m", posts)
    write_pelican(out / "pelican", posts)
    write_hugo(out / "hugo", posts, hugo_pagination)
    m = manifest(posts, seed)
    m["hugo_pagination"] = hugo_pagination
    _write(out / "manifest.json", json.dumps(m, indent=1))
    return m


def detect_hugo_pagination() -> str:
    """Hugo >= 0.128 configures paging with [pagination] (the old top-level
    `paginate` key is deprecated and later an error); older Hugo (Debian
    bookworm ships 0.111) only knows `paginate`."""
    import subprocess
    try:
        v = subprocess.run(["hugo", "version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "new"
    m = re.search(r"v0\.(\d+)", v)
    if m and int(m.group(1)) < 128:
        return "old"
    return "new"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--posts", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hugo-pagination", choices=["auto", "old", "new"], default="auto",
                    help="pagination config style for hugo.toml (default: from `hugo version`)")
    a = ap.parse_args(argv)
    m = generate(a.posts, a.out, a.seed, a.hugo_pagination)
    kinds: dict[str, int] = {}
    for it in m["items"]:
        kinds[it["kind"]] = kinds.get(it["kind"], 0) + 1
    print(f"wrote {m['posts']} posts ({', '.join(f'{v} {k}s' for k, v in sorted(kinds.items()))}), "
          f"{m['words']} words, seed {m['seed']} -> {a.out}/{{o2m,pelican,hugo}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
