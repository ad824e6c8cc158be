"""T17's corpus: about 270 hostile texts made by combining ways to run script with the contexts that text could
break out of and the filter-evasion spellings that get past naive sanitizers, plus hostile URLs.

Each payload calls `alert(<its number>)`, so a dialog that fires names the payload that ran. Written here for
this project from the kinds of vectors OWASP's filter-evasion cheat sheet describes, not copied from any list.
"""

from __future__ import annotations

import re
from collections.abc import Callable

JS = "§JS§"  # where a vector calls script; replaced by alert(<number>)

# Ways a text becomes script if it ever reaches the page as markup.
VECTORS = (
    "<script>§JS§</script>",
    "<img src=x onerror=§JS§>",
    "<svg onload=§JS§>",
    "<svg><script>§JS§</script></svg>",
    "<body onload=§JS§>",
    '<iframe srcdoc="<script>§JS§</script>"></iframe>',
    '<iframe src="javascript:§JS§"></iframe>',
    "<details open ontoggle=§JS§>",
    "<input autofocus onfocus=§JS§>",
    "<video><source onerror=§JS§></video>",
    "<audio src=x onerror=§JS§>",
    '<a href="javascript:§JS§">リンク</a>',
    '<object data="javascript:§JS§"></object>',
    '<embed src="data:text/html,<script>§JS§</script>">',
    "<math><mtext><table><mglyph><style><img src=x onerror=§JS§>",
    '<form><button formaction="javascript:§JS§">送信</button></form>',
    "<marquee onstart=§JS§>",
    "<select autofocus onfocus=§JS§></select>",
    "<textarea autofocus onfocus=§JS§></textarea>",
    "<style>@import 'javascript:§JS§';</style>",
    '<meta http-equiv="refresh" content="0;url=javascript:§JS§">',
    '<base href="javascript:§JS§//">',
    '<div style="background:url(javascript:§JS§)">',
    '<noscript><p title="</noscript><img src=x onerror=§JS§>">',
    "<template><script>§JS§</script></template>",
    "<svg><animate onbegin=§JS§ attributeName=x dur=1s>",
    "<xss onpointerover=§JS§ style=display:block>ここ</xss>",
    '<img src="x" onerror="§JS§"',
)

# What a payload starts and ends with: the context it tries to leave, or text that confuses the display.
CONTEXTS = (
    ("", ""),  # a text node
    ('"', ""),  # a double-quoted attribute
    ('">', ""),
    ("'>", ""),  # a single-quoted attribute
    ("`>", ""),  # a backtick-quoted attribute (old IE)
    ("</mark>", "<mark>"),  # a highlight
    ("<mark>", "</mark>"),
    ("</title>", ""),  # the page title
    ("</textarea>", ""),  # an edit form's text area
    ("</script>", ""),
    ("-->", ""),
    ("]]>", ""),
    ("</style>", ""),
    ("</option></select>", ""),
    ("\u202e", "\u202c"),  # right-to-left override
    ("\u2067", "\u2069"),  # right-to-left isolate
    ("\u200f\u202b", "\u202c"),  # right-to-left mark and embedding
)


def _outside_js(text: str, change: Callable[[str], str]) -> str:
    """`change` applied to the markup around the script call, never to the call (JavaScript is case-sensitive)."""
    head, separator, tail = text.partition(JS)
    return change(head) + separator + (change(tail) if separator else "")


def _mixed_case(text: str) -> str:
    return "".join(ch.upper() if i % 2 else ch.lower() for i, ch in enumerate(text))


def _nested(text: str) -> str:
    """<scr<script>ipt>: what is left when a filter removes the inner tag once."""
    return re.sub(r"<(\w{2})(\w+)", lambda m: f"<{m[1]}<{m[1]}{m[2]}>{m[2]}", text, count=1)


def _entities(call: str, hexadecimal: bool) -> str:
    return "".join(f"&#x{ord(ch):x}" if hexadecimal else f"&#{ord(ch)};" for ch in call)


# Filter-evasion spellings of a vector (each receives the vector with JS still in it).
EVASIONS: tuple[Callable[[str], str], ...] = (
    lambda text: text,
    lambda text: _outside_js(text, str.upper),  # <IMG SRC=X ONERROR=…>
    lambda text: _outside_js(text, _mixed_case),  # <sCrIpT>
    lambda text: _outside_js(text, lambda part: part.replace(" ", "/")),  # <img/src=x/onerror=…>
    lambda text: _outside_js(text, lambda part: part.replace(" ", "\t\n")),
    _nested,
    lambda text: text.replace(JS, _entities("alert(§N§)", hexadecimal=False)),  # decoded inside attributes
    lambda text: text.replace(JS, _entities("alert(§N§)", hexadecimal=True)),  # &#x61 without semicolons
    lambda text: text.rstrip(">"),  # a tag left open for the next one to close
    lambda text: _outside_js(text, lambda part: part.replace("<", "＜").replace(">", "＞")),  # NFKC folds these
    lambda text: _outside_js(text, lambda part: part.replace("<", "%3C").replace(">", "%3E").replace('"', "%22")),
    lambda text: _outside_js(text, lambda part: part.replace('"', "`")),
    lambda text: _outside_js(text, lambda part: part.replace("<", "&lt;").replace(">", "&gt;")),  # escaped once
)

# Written for the cases the grid does not make: attribute breakers alone, highlight markers, template syntax.
SINGLES = (
    '"onmouseover="§JS§',
    "' onfocus='§JS§' autofocus='",
    "` onmouseover=`§JS§",
    '" autofocus onfocus="§JS§" x="',
    "x' onerror='§JS§",
    '"/><svg onload=§JS§>',
    "<mark>表示確認</mark>",
    "</mark><mark onmouseover=§JS§>mark</mark>",
    "表示確認</mark><img src=x onerror=§JS§>",
    "&lt;mark&gt;表示確認&lt;/mark&gt;",
    "…<mark>…</mark>…",
    "<mark",
    "</mark",
    "mark>",
    "<</mark>mark>",
    "<ma<mark>rk>",
    "{{7*7}} {% raw %}${§JS§}",
    "${§JS§}",
    "#{§JS§}",
    "javascript:§JS§",
    "JaVaScRiPt:§JS§",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "\u2028§JS§\u2029",
    "<scr\u200bipt>§JS§</scr\u200bipt>",
    "&#60;script&#62;§JS§&#60;/script&#62;",
    "\\x3cscript\\x3e§JS§\\x3c/script\\x3e",
    "\\u003cscript\\u003e§JS§\\u003c/script\\u003e",
)

# Links: stored ones must stay http(s) and one attribute value, however hostile the rest of the URL.
HOSTILE_URLS = (
    'https://example.com/"onmouseover="alert(1)"x="',
    "https://example.com/'><script>alert(2)</script>",
    "https://example.com/?q=<svg/onload=alert(3)>",
    "https://example.com/#javascript:alert(4)",
    "https://example.com/`onfocus=`alert(5)",
    "https://javascript:alert(6)@example.com/",
    "https://example.com/\u202e/moc.live",
    "https://example.com/%22%3E%3Cscript%3Ealert(7)%3C/script%3E",
    "HTTPS://example.com/<img/src=x/onerror=alert(8)>",
    "https://example.com/&quot;&gt;&lt;script&gt;alert(9)&lt;/script&gt;",
    "https://example.com/</mark><mark>",
    "http://example.com/data:text/html,<script>alert(10)</script>",
)
# Links that must never be stored: the import refuses them.
REFUSED_URLS = (
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "jav&#x09;ascript:alert(1)",
    "\x01javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//example.com/no-scheme",
    "https://",
    "https:///path-only",
)


def _numbered(template: str, number: int) -> str:
    return template.replace(JS, f"alert({number})").replace("§N§", str(number))


def payloads() -> list[str]:
    """The corpus, in a fixed order. Half the grid of vectors × contexts (a checkerboard, so that every vector
    meets half the contexts and every context half the vectors), each with one evasion in turn, then SINGLES."""
    templates = []
    for i, vector in enumerate(VECTORS):
        for j, (before, after) in enumerate(CONTEXTS):
            if (i + j) % 2:
                continue
            evasion = EVASIONS[(i + j // 2) % len(EVASIONS)]
            templates.append(before + evasion(vector) + after)
    templates.extend(SINGLES)
    found: list[str] = []
    for template in templates:
        payload = _numbered(template, len(found) + 1)
        if payload not in found:
            found.append(payload)
    return found
