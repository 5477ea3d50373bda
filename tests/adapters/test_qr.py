"""QR codes (issue 10, point 8): one cached renderer, used only by the adapters that send or show a QR."""

from __future__ import annotations

import threading

import pytest
import segno

import adapters.qr
from adapters.qr import CACHE_SIZE, qr_code, render_qr
from tests.chat_support import ChatDriver

URL = "https://pay.example.com/p/abcdefghijklmnopqrstuvwxyz23"


def test_each_url_and_size_is_rendered_once() -> None:
    qr_code.cache_clear()
    first = qr_code(URL, "png", 8)
    assert first.startswith(b"\x89PNG")
    assert qr_code(URL, "png", 8) is first
    bigger = qr_code(URL, "png", 12)
    assert bigger is not first and len(bigger) > len(first)
    assert qr_code(URL, "svg", 4).startswith(b"<?xml")
    info = qr_code.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (1, 3, CACHE_SIZE)  # bounded


def test_the_cache_is_bounded() -> None:
    qr_code.cache_clear()
    for n in range(CACHE_SIZE + 10):
        qr_code(f"{URL}{n}", "svg", 1)
    assert qr_code.cache_info().currsize == CACHE_SIZE


async def test_render_qr_renders_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []

    def spy(url: str, kind: str = "png", scale: int = 8) -> bytes:
        threads.append(threading.current_thread())
        return b"png"

    monkeypatch.setattr(adapters.qr, "qr_code", spy)
    assert await render_qr(URL) == b"png"
    assert threads and threads[0] is not threading.main_thread()


async def test_a_charge_in_chat_renders_no_qr(chat: ChatDriver, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    real_make = segno.make

    def counting_make(content: str, *args: object, **kwargs: object) -> segno.QRCode:
        made.append(content)
        return real_make(content, *args, **kwargs)

    monkeypatch.setattr(segno, "make", counting_make)
    replies = await chat("/charge 25 birthday cake")
    assert replies[-1].link_id is not None
    assert made == []
