"""Text to speech: 8 kHz 16-bit mono WAV that Asterisk plays without transcoding.

espeak-ng (offline, the default) or gTTS (Google's web endpoint, optional); sox converts.
Files are cached by a hash of engine, voice and text, so the same notice text is rendered once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class TtsError(RuntimeError):
    pass


def cache_key(engine: str, text: str, lang: str = "cmn") -> str:
    return hashlib.sha256(f"{engine}\0{lang}\0{text}".encode()).hexdigest()[:32]


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise TtsError(
            f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace')[:200]}"
        )


class Tts:
    def __init__(self, audio_dir: str | Path, engine: str = "espeak", gtts_url: str = "") -> None:
        self.dir = Path(audio_dir).resolve() / "cache"
        self.engine = engine
        # Base URL of the gTTS web endpoint; empty means Google's. Tests use a local stand-in.
        self.gtts_url = gtts_url.rstrip("/")
        self._locks: dict[str, asyncio.Lock] = {}

    def path_for(self, text: str) -> Path:
        """Where ``render`` puts this text (without extension), known before rendering."""
        return self.dir / cache_key(self.engine, text)

    async def render(self, text: str) -> Path:
        """Path of the 8 kHz WAV *without* extension (as Asterisk's playback wants it)."""
        key = cache_key(self.engine, text)
        base = self.dir / key
        wav = base.with_suffix(".wav")
        if wav.exists():
            return base
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if not wav.exists():
                self.dir.mkdir(parents=True, exist_ok=True)
                await self._render_to(text, wav)
        self._locks.pop(key, None)
        return base

    async def _render_to(self, text: str, wav: Path) -> None:
        with tempfile.TemporaryDirectory(dir=self.dir) as tmp:
            raw = Path(tmp) / ("speech.mp3" if self.engine == "gtts" else "speech.wav")
            if self.engine == "gtts":
                await asyncio.to_thread(self._gtts, text, raw)
            else:
                exe = shutil.which("espeak-ng")
                if exe is None:
                    raise TtsError("espeak-ng is not installed")
                await _run(exe, "-v", "cmn", "-s", "150", "-w", str(raw), text)
            out = Path(tmp) / "out.wav"
            sox = shutil.which("sox")
            if sox is None:
                raise TtsError("sox is not installed")
            await _run(
                sox, str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(out)
            )
            os.replace(out, wav)  # atomic: Asterisk never sees half a file

    def _gtts(self, text: str, out: Path) -> None:
        from gtts import gTTS
        from gtts.tts import gTTSError

        base = self.gtts_url

        class _Endpoint(gTTS):  # type: ignore[misc]
            """gTTS with its requests sent to ``base`` instead of Google's host."""

            def _prepare_requests(self) -> list[Any]:
                prepared = list(super()._prepare_requests())
                if base:
                    for p in prepared:
                        p.url = base + "/" + p.url.split("/", 3)[3]
                return prepared

        try:
            _Endpoint(text, lang="zh").save(str(out))
        except (gTTSError, OSError) as exc:
            raise TtsError(f"gTTS failed: {exc}") from exc
