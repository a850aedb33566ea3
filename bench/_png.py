# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark-only: draw one whole-fix run as a PNG with the standard library (zlib + struct).

No plotting library is needed on the benchmark machine. The picture has one row per color (green = the
prober got HTTP 200, red = it did not, grey = no sample), a row of the writer's acknowledged writes (one
tick each), vertical lines where each phase started (phase 1 blue, phase 2 orange, CORS purple, the end
black) and a time axis with ticks and labels in seconds (spaced to the run's length). Text is a 3x5 pixel font, scaled.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

# 3x5 glyphs, rows top to bottom, 3 bits each (4 = left pixel).
_FONT = {
    " ": "00000", "0": "75557", "1": "26222", "2": "71747", "3": "71717", "4": "55711", "5": "74717", "6": "74757",
    "7": "71111", "8": "75757", "9": "75717", ".": "00002", ":": "02020", "-": "00700", "/": "11244", "=": "07070",
    "A": "25755", "B": "65656", "C": "74447", "D": "65556", "E": "74647", "F": "74644", "G": "74557", "H": "55755",
    "I": "72227", "K": "55655", "L": "44447", "M": "57555", "N": "75555", "O": "75557", "P": "75744", "R": "75655",
    "S": "74717", "T": "72222", "U": "55557", "V": "55552", "W": "55575", "X": "55255", "Y": "55222", "Z": "71247",
    "J": "11157", "Q": "75571", "(": "24442", ")": "42224", "%": "51245", ",": "00024", ">": "42124", "<": "12421",
}

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (200, 200, 200)
LIGHT = (235, 235, 235)
UP = (46, 160, 67)
DOWN = (215, 48, 39)
ACK = (40, 90, 200)
PHASE_COLORS = {"phase1": (31, 119, 180), "phase2": (255, 127, 14), "cors": (148, 103, 189), "end": BLACK}


class Canvas:
    def __init__(self, width: int, height: int, bg=WHITE):
        self.w, self.h = width, height
        self.px = [bytearray(bytes(bg) * width) for _row in range(height)]

    def dot(self, x: int, y: int, color) -> None:
        if 0 <= x < self.w and 0 <= y < self.h:
            self.px[y][3 * x:3 * x + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color) -> None:
        x0, x1 = max(0, min(x0, x1)), min(self.w, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.h, max(y0, y1))
        row = bytes(color) * (x1 - x0)
        for y in range(y0, y1):
            self.px[y][3 * x0:3 * x1] = row

    def text(self, x: int, y: int, s: str, color=BLACK, scale: int = 2) -> None:
        for ch in s.upper():
            glyph = _FONT.get(ch, _FONT[" "])
            for r, bits in enumerate(glyph):
                v = int(bits)
                for c in range(3):
                    if v & (4 >> c):
                        self.rect(x + c * scale, y + r * scale, x + (c + 1) * scale, y + (r + 1) * scale, color)
            x += 4 * scale

    def png(self) -> bytes:
        raw = b"".join(b"\x00" + bytes(row) for row in self.px)

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def draw_run(path: Path, t0: float, t1: float, *, colors: dict[str, list[tuple[float, bool]]], acked: list[float],
             phases: list[tuple[str, float]], title: str, width: int = 1200) -> Path:
    """Write the PNG. Times are one clock (seconds); ``colors`` maps a row label to (time, up) samples."""
    left, right, top, row_h, gap = 110, 20, 50, 34, 14
    rows = [*colors, "ACKED WRITES"]
    height = top + len(rows) * (row_h + gap) + 60
    cv = Canvas(width, height)
    span = max(t1 - t0, 1e-6)
    plot_w = width - left - right

    def x_of(t: float) -> int:
        return left + round((t - t0) / span * plot_w)

    cv.text(left, 8, title, scale=2)
    y = top
    for label, samples in colors.items():
        cv.text(8, y + row_h // 2 - 5, label, scale=2)
        cv.rect(left, y, left + plot_w, y + row_h, GREY)
        for i, (t, ok) in enumerate(samples):
            t_next = samples[i + 1][0] if i + 1 < len(samples) else t + 0.05
            cv.rect(x_of(t), y, max(x_of(t_next), x_of(t) + 1), y + row_h, UP if ok else DOWN)
        y += row_h + gap
    cv.text(8, y + row_h // 2 - 5, "ACKED", scale=2)
    cv.rect(left, y, left + plot_w, y + row_h, LIGHT)
    for t in acked:
        cv.rect(x_of(t), y + 4, x_of(t) + 1, y + row_h - 4, ACK)
    bottom = y + row_h
    for name, t in phases:
        color = PHASE_COLORS.get(name, BLACK)
        x = x_of(t)
        cv.rect(x, top - 6, x + 2, bottom + 4, color)
        cv.text(x + 4, top - 16 if name != "end" else bottom + 30, name, color=color, scale=2)
    # time axis: tick per second, label every 5 s
    axis_y = bottom + 8
    cv.rect(left, axis_y, left + plot_w, axis_y + 1, BLACK)
    # a label at least ~70 px apart, a small tick at a fifth of that
    label = next((st for st in (1, 2, 5, 10, 20, 30, 60, 120, 300, 600) if st * plot_w / span >= 70), 1200)
    tick = label / 5
    k = 0
    while k * tick <= span:
        sec = k * tick
        x = x_of(t0 + sec)
        big = k % 5 == 0
        cv.rect(x, axis_y, x + 1, axis_y + (8 if big else 4), BLACK)
        if big:
            cv.text(x - 4, axis_y + 12, f"{sec:g}", scale=2)
        k += 1
    path.write_bytes(cv.png())
    return path
