"""The fast path's request parser (`host/fast_request.py`), with hostile input: whatever
it accepts, Twisted's own parser reads the same way; what it is unsure of, it hands over;
it never decides on a head that is not yet whole."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.web import http

from o2m_pub.host.fast_request import HAND_OVER, MAX_HEAD, MAX_HEADERS, RequestHead, parse_head


def twisted_reads(data: bytes) -> tuple[list[tuple], bytes]:
    """What Twisted's HTTP/1.1 parser makes of `data`: each request it gives the
    application (method, target, version, headers by lowercase name), and what it
    answered by itself (a 400)."""
    seen = []

    class Recorder(http.Request):
        def process(self) -> None:
            headers = {name.lower(): values
                       for name, values in self.requestHeaders.getAllRawHeaders()}
            seen.append((self.method, self.uri, self.clientproto, headers))

    channel = http.HTTPChannel()
    channel.requestFactory = Recorder
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(data)
    return seen, transport.value()


def as_twisted_would(head: RequestHead) -> tuple:
    """A parsed head in the shape `twisted_reads` gives: all values of a header (ours
    keeps the first, but Accept-Encoding's, which the server joins as Twisted's reader
    does)."""
    return head.method, head.target, head.version, head.headers


def _twisted_view(seen: tuple) -> tuple:
    method, target, version, headers = seen
    firsts = {name: (b",".join(values) if name == b"accept-encoding" else values[0])
              for name, values in headers.items()}
    return method, target, version, firsts


_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HOSTILE = [b"\r", b"\n", b"\r\n", b"\x00", b"\t", b" ", b":", b"\x7f", b"\x80", b"\xff",
            b"\x01", b"\x0b", b'"', b"\\", b"%", b"?", b"#", b"/"]

names = st.one_of(
    st.text(_TCHAR, min_size=1, max_size=12).map(str.encode),
    st.sampled_from([b"Host", b"Content-Length", b"content-length", b"Transfer-Encoding",
                     b"Expect", b"Accept-Encoding", b"accept-encoding", b"Connection",
                     b"If-None-Match", b"Range", b"User-Agent", b"X-A "]),
    st.lists(st.sampled_from(_HOSTILE + [b"a", b"B", b"-"]), min_size=0, max_size=4).map(
        b"".join),
)
values = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=20).map(str.encode),
    st.sampled_from([b"0", b"00", b"5", b"chunked", b"identity", b"100-continue", b"gzip",
                     b"close", b"keep-alive close", b"  padded  ", b"\tx\t"]),
    st.lists(st.sampled_from(_HOSTILE + [b"a", b"0", b" "]), max_size=6).map(b"".join),
)
line_ends = st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r", b"\r\n ", b"\r\n\t"])
fields = st.tuples(names, st.sampled_from([b":", b": ", b" : ", b"", b"::"]), values, line_ends)
methods = st.sampled_from([b"GET", b"HEAD", b"get", b"POST", b"PUT", b"GET\t", b"", b"G ET"])
targets = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=20).map(
        lambda t: b"/" + t.encode()),
    st.lists(st.sampled_from(_HOSTILE + [b"/", b"a", b"%2e", b".."]), max_size=6).map(
        b"".join),
    st.sampled_from([b"*", b"http://x/", b"/", b"//", b"/?v=1"]),
)
versions = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"http/1.1", b"HTTP/1.1 ",
                            b"HTTP/0.9", b""])


@st.composite
def heads(draw) -> bytes:
    """A request head built from valid and hostile parts."""
    lead = draw(st.sampled_from([b""] * 6 + [b"\r\n", b" ", b"\n"]))
    line = draw(methods) + b" " + draw(targets) + b" " + draw(versions)
    lines = b"".join(name + sep + value + end
                     for name, sep, value, end in draw(st.lists(fields, max_size=8)))
    return lead + line + b"\r\n" + lines + b"\r\n"


@st.composite
def plain_heads(draw) -> bytes:
    """A well-formed plain GET or HEAD: the fast path must take it."""
    line = (draw(st.sampled_from([b"GET", b"HEAD"])) + b" "
            + b"/" + draw(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e),
                                  max_size=30)).encode()
            + b" " + draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"])))
    pairs = draw(st.lists(st.tuples(
        st.text(_TCHAR, min_size=1, max_size=12).map(str.encode).filter(
            lambda n: n.lower() not in (b"content-length", b"transfer-encoding", b"expect")),
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=30).map(
            str.encode)), max_size=12))
    return line + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in pairs) + b"\r\n"


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(heads())
@example(b"GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n")
@example(b"GET /a HTTP/1.1\r\nAccept-Encoding: br\r\naccept-encoding: gzip\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nHost:  \t x \t \r\n\r\n")
def test_whatever_it_accepts_twisted_reads_the_same(data):
    """On hostile heads (folds, bare CR and LF, NUL, bytes past ASCII, odd methods,
    targets and versions, bodies, repeated headers) the parser never raises; a head it
    accepts, Twisted's parser accepts too (no 400) and reads as the same method,
    target, version and header values."""
    verdict = parse_head(data)
    assert verdict is None or verdict is HAND_OVER or isinstance(verdict, RequestHead)
    if isinstance(verdict, RequestHead):
        assert verdict.end == len(data)
        seen, answered = twisted_reads(data)
        assert answered == b""
        assert [as_twisted_would(verdict)] == [_twisted_view(s) for s in seen]


@settings(max_examples=300)
@given(plain_heads())
def test_a_plain_head_is_taken_and_read_as_twisted_reads_it(data):
    """A well-formed GET or HEAD with header lines of visible ASCII and no body is
    taken by the fast path (the parser is strict, not useless), as Twisted reads it."""
    verdict = parse_head(data)
    assert isinstance(verdict, RequestHead)
    seen, answered = twisted_reads(data)
    assert answered == b""
    assert [as_twisted_would(verdict)] == [_twisted_view(s) for s in seen]


@settings(max_examples=200)
@given(plain_heads(), st.data())
def test_never_decides_on_a_head_not_yet_whole(data, draw):
    """Any part of a head, cut short, is 'wait for more' (None), never a request."""
    cut = draw.draw(st.integers(0, len(data) - 1))
    assert parse_head(data[:cut]) is None


@settings(max_examples=200)
@given(st.lists(plain_heads(), min_size=2, max_size=4))
def test_pipelined_heads_are_read_one_after_another(many):
    """Several heads in one buffer are read in turn, each from where the last ended,
    exactly as each alone."""
    buffer, start = b"".join(many), 0
    for alone in many:
        head = parse_head(buffer, start)
        assert isinstance(head, RequestHead)
        assert head._replace(end=head.end - start) == parse_head(alone)
        start = head.end
    assert start == len(buffer)


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD,  # no end in sight
    b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * (MAX_HEADERS + 1) + b"\r\n",
    b"GET / HTTP/1.1\r\nX-Long: " + b"a" * MAX_HEAD + b"\r\n\r\n",
])
def test_over_long_heads_are_handed_over(data):
    """A head over MAX_HEAD bytes (whole or not) or with more than MAX_HEADERS lines goes
    to Twisted, which has its own, larger limits."""
    assert parse_head(data) is HAND_OVER


def test_a_head_at_the_limit_is_taken():
    """A head of exactly MAX_HEAD bytes is still plain."""
    line = b"GET / HTTP/1.1\r\nX-Pad: "
    data = line + b"a" * (MAX_HEAD - len(line) - 4) + b"\r\n\r\n"
    assert len(data) == MAX_HEAD
    assert isinstance(parse_head(data), RequestHead)


def test_the_same_header_lines_are_read_once_and_shared_read_only():
    """A client sends the same header lines with each request: they are read once and
    the requests share what was read, which no request can change; lines once handed
    over are handed over again, whatever the request line."""
    lines = b"Host: a.example\r\nAccept-Encoding: gzip\r\nAccept-Encoding: br\r\n\r\n"
    first = parse_head(b"GET /one HTTP/1.1\r\n" + lines)
    second = parse_head(b"HEAD /two?x=1 HTTP/1.1\r\n" + lines)
    assert (b"GET", b"/one") == (first.method, first.target)
    assert (b"HEAD", b"/two?x=1") == (second.method, second.target)
    assert {b"host": b"a.example", b"accept-encoding": b"gzip,br"} == dict(second.headers)
    assert first.headers is second.headers
    with pytest.raises(TypeError):
        second.headers[b"host"] = b"b.example"  # type: ignore[index]

    body = b"Host: a.example\r\nContent-Length: 5\r\n\r\n"
    assert HAND_OVER is parse_head(b"GET /one HTTP/1.1\r\n" + body)
    assert HAND_OVER is parse_head(b"GET /two HTTP/1.1\r\n" + body)
