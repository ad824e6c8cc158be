"""parse_feed / feed_entry_draft: RSS 1.0, RSS 2.0 and Atom in UTF-8, EUC-JP and Shift_JIS; XXE refused."""

from __future__ import annotations

from datetime import datetime

import feedparser
import pytest

from crawlers.parse import ParseError
from crawlers.parse.feed import feed_entry_draft, parse_feed
from schemas import JST

FEED_URL = "https://www.city.example.lg.jp/news/feed.xml"

RSS10 = """<?xml version="1.0" encoding="{encoding}"?>
<rdf:RDF xmlns="http://purl.org/rss/1.0/" xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="https://www.city.example.lg.jp/news/feed.xml">
  <title>例市 新着情報</title><link>https://www.city.example.lg.jp/</link><description>例市の新着情報</description>
  <items><rdf:Seq><rdf:li rdf:resource="https://www.city.example.lg.jp/news/1.html"/>
  <rdf:li rdf:resource="https://www.city.example.lg.jp/news/2.html"/></rdf:Seq></items>
</channel>
<item rdf:about="https://www.city.example.lg.jp/news/1.html">
  <title>図書館の休館について</title><link>https://www.city.example.lg.jp/news/1.html</link>
  <description>&lt;p&gt;年末年始は&lt;b&gt;休館&lt;/b&gt;します。&lt;/p&gt;&lt;script&gt;alert("x")&lt;/script&gt;</description>
  <dc:date>2026-04-01T09:00:00+09:00</dc:date>
</item>
<item rdf:about="https://www.city.example.lg.jp/news/2.html">
  <title>{name}記念館①の開館 AT&amp;T 5 &lt; 6</title><link>/news/2.html#main</link>
  <description>記念館が開館します。</description><dc:date>2026-03-15T00:00:00+09:00</dc:date>
</item>
</rdf:RDF>
"""

RSS20 = """<?xml version="1.0" encoding="{encoding}"?>
<rss version="2.0"><channel>
  <title>例市 新着情報</title><link>https://www.city.example.lg.jp/</link><description>例市の新着情報</description>
  <item><title>図書館の休館について</title><link>https://www.city.example.lg.jp/news/1.html</link>
    <guid isPermaLink="false">news-1</guid>
    <description><![CDATA[<p>年末年始は<b>休館</b>します。</p><script>alert("x")</script>]]></description>
    <pubDate>Wed, 01 Apr 2026 00:00:00 GMT</pubDate></item>
  <item><title>{name}記念館①の開館 AT&amp;T 5 &lt; 6</title><link>/news/2.html#main</link><guid>news-2</guid>
    <description>記念館が開館します。</description><pubDate>Sun, 15 Mar 2026 00:00:00 +0900</pubDate></item>
</channel></rss>
"""

ATOM = """<?xml version="1.0" encoding="{encoding}"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>例市 新着情報</title><link href="https://www.city.example.lg.jp/"/><id>urn:example:news</id>
  <updated>2026-04-01T09:00:00+09:00</updated>
  <entry><title>図書館の休館について</title><link href="https://www.city.example.lg.jp/news/1.html"/>
    <id>urn:example:news:1</id><published>2026-04-01T09:00:00+09:00</published>
    <updated>2026-04-02T10:00:00+09:00</updated>
    <summary type="html">&lt;p&gt;年末年始は&lt;b&gt;休館&lt;/b&gt;します。&lt;/p&gt;
      &lt;script&gt;alert("x")&lt;/script&gt;</summary>
  </entry>
  <entry><title type="text">{name}記念館①の開館 AT&amp;T 5 &lt; 6</title><link href="/news/2.html#main"/>
    <id>urn:example:news:2</id><updated>2026-03-15T00:00:00+09:00</updated>
    <content type="html">記念館が開館します。</content></entry>
</feed>
"""

FORMATS = {"rss10": RSS10, "rss20": RSS20, "atom10": ATOM}
ENCODINGS = {"UTF-8": "utf-8", "EUC-JP": "euc_jis_2004", "Shift_JIS": "cp932"}
# 髙 (an IBM extension) exists in cp932 only; ① is also in EUC-JP's NEC row 13.
NAMES = {"UTF-8": "髙橋", "EUC-JP": "高橋", "Shift_JIS": "髙橋"}


def feed_bytes(version: str, label: str) -> bytes:
    return FORMATS[version].format(encoding=label, name=NAMES[label]).encode(ENCODINGS[label])


@pytest.mark.parametrize("label", ENCODINGS)
@pytest.mark.parametrize("version", FORMATS)
def test_formats_and_encodings(version, label, assert_valid):
    feed = parse_feed(feed_bytes(version, label), url=FEED_URL)
    assert feed.version == version
    assert feed.title == "例市 新着情報"
    assert feed.link == "https://www.city.example.lg.jp/"
    first, second = feed.entries
    assert first.title == "図書館の休館について"
    assert first.link == "https://www.city.example.lg.jp/news/1.html"
    assert first.summary_text == "年末年始は休館します。"
    assert second.title == f"{NAMES[label]}記念館①の開館 AT&T 5 < 6"
    assert second.link == "https://www.city.example.lg.jp/news/2.html"  # relative, fragment dropped
    assert second.summary_text == "記念館が開館します。"
    assert "\ufffd" not in first.summary_text + second.title
    for entry in feed.entries:
        assert_valid(feed_entry_draft(entry))


def test_dates_are_japan_time():
    rss10 = parse_feed(feed_bytes("rss10", "UTF-8"), url=FEED_URL).entries[0]
    assert rss10.updated_at == datetime(2026, 4, 1, 9, tzinfo=JST)  # dc:date
    rss20 = parse_feed(feed_bytes("rss20", "UTF-8"), url=FEED_URL).entries[0]
    assert rss20.published_at == datetime(2026, 4, 1, 9, tzinfo=JST)
    atom = parse_feed(feed_bytes("atom10", "UTF-8"), url=FEED_URL).entries[0]
    assert (atom.published_at, atom.updated_at) == (datetime(2026, 4, 1, 9, tzinfo=JST),
                                                    datetime(2026, 4, 2, 10, tzinfo=JST))


def test_entry_draft(assert_valid):
    entry = parse_feed(feed_bytes("rss20", "Shift_JIS"), url=FEED_URL).entries[0]
    draft = feed_entry_draft(entry)
    assert draft == {
        "kind": "page",
        "title": "図書館の休館について",
        "body": "年末年始は休館します。",
        "url": "https://www.city.example.lg.jp/news/1.html",
        "site": "www.city.example.lg.jp",
        "published_at": "2026-04-01T09:00:00+09:00",
        "external_id": "news-1",
    }
    assert_valid(draft)


def test_the_encoding_and_its_source_are_recorded():
    feed = parse_feed(feed_bytes("rss20", "EUC-JP"), url=FEED_URL)
    assert (feed.encoding, feed.encoding_source) == ("euc_jis_2004", "xml-declaration")  # ① is NEC row 13
    content_type = "application/rss+xml; charset=Shift_JIS"
    header = parse_feed(feed_bytes("rss20", "Shift_JIS"), url=FEED_URL, content_type=content_type)
    assert (header.encoding, header.encoding_source) == ("cp932", "header")


def test_utf16_with_a_bom():
    feed = parse_feed(RSS20.format(encoding="UTF-16", name="髙橋").encode("utf-16"), url=FEED_URL)
    assert (feed.encoding_source, feed.entries[1].title) == ("bom", "髙橋記念館①の開館 AT&T 5 < 6")


def test_an_entry_without_a_usable_link_cannot_be_a_page():
    rss = (b'<rss version="2.0"><channel><title>t</title><item><title>x</title>'
           b"<link>javascript:alert(1)</link></item></channel></rss>")
    entry = parse_feed(rss, url=FEED_URL).entries[0]
    assert entry.link is None
    with pytest.raises(ParseError, match="リンク"):
        feed_entry_draft(entry)


def test_an_untitled_entry_takes_its_first_summary_line(assert_valid):
    rss = ('<rss version="2.0"><channel><item><link>https://example.jp/a</link>'
           "<description>一行目&lt;br&gt;二行目</description></item></channel></rss>").encode()
    draft = feed_entry_draft(parse_feed(rss, url=FEED_URL).entries[0])
    assert (draft["title"], draft["body"]) == ("一行目", "一行目\n二行目")
    assert_valid(draft)


@pytest.mark.parametrize("document", [b"<html><body><p>not a feed</p></body></html>", b"", b"\x00\xff\xfe"])
def test_not_a_feed(document):
    with pytest.raises(ParseError, match="フィード"):
        parse_feed(document, url=FEED_URL)


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>&xxe;</title></channel></rss>"""
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<rss version="2.0"><channel><title>&lol9;</title></channel></rss>"""
PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE rss SYSTEM "http://169.254.169.254/evil.dtd"><rss version="2.0"><channel/></rss>"""
LATE_ENTITY = b"""<rss version="2.0"><channel><!ENTITY x "y"><title>&x;</title></channel></rss>"""
LOWERCASE_IN_UTF16 = '<?xml version="1.0" encoding="UTF-16"?><!doctype rss [<!entity a "b">]><rss/>'.encode(
    "utf-16")


@pytest.mark.parametrize("document", [XXE, BILLION_LAUGHS, PARAMETER_ENTITY, LATE_ENTITY, LOWERCASE_IN_UTF16],
                         ids=["xxe", "billion-laughs", "external-dtd", "entity-in-body", "utf16-lowercase"])
def test_doctype_and_entities_are_refused_before_feedparser(document, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("feedparser must not see this document")

    monkeypatch.setattr(feedparser, "parse", never)
    with pytest.raises(ParseError, match="DOCTYPE"):
        parse_feed(document, url=FEED_URL)


def test_declarations_inside_comments_and_cdata_are_text():
    rss = (b'<rss version="2.0"><channel><title>t</title><!-- <!DOCTYPE x> --><item><title>a</title>'
           b"<link>https://example.jp/a</link>"
           b"<description><![CDATA[<!DOCTYPE html><p>HTML page</p>]]></description>"
           b"</item></channel></rss>")
    assert parse_feed(rss, url=FEED_URL).entries[0].summary_text == "HTML page"


def test_an_unclosed_cdata_hides_no_declaration():
    with pytest.raises(ParseError, match="DOCTYPE"):
        parse_feed(b'<rss version="2.0"><channel><![CDATA[ <!DOCTYPE x [<!ENTITY a "b">]>', url=FEED_URL)
