"""A short video of the live perfusion map, with its colour bar, outline, time and event marks.

Frames are composed as the analysis delivers them (:class:`lsci.analysis.live.LiveUpdate`):
the map in lsci's perfusion colormap between the live colour limits, the hypoperfused outline
in cyan, the colour bar with its unit and % of healthy skin (:mod:`napari_lsci._colorbar`),
and a caption with the time and the last event mark. They are kept JPEG-compressed in memory
(about 50 kB each) and written as Motion-JPEG AVI by OpenCV (``opencv-python-headless``), under
a temporary name published only when complete (:mod:`lsci.recording.atomic`).
"""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib import colormaps

from lsci.analysis.live import LiveUpdate
from lsci.recording import Event
from lsci.recording.atomic import check_target, create_exclusive, publish
from lsci.viz.display import PERFUSION_COLORMAP
from napari_lsci._colorbar import ColourBar, colourbar_rgb

__all__ = ["LiveVideo"]

#: Most frames kept: ten minutes at the default rate; older frames are dropped first.
MAX_FRAMES = 3000
_CAPTION_PX = 28
_OUTLINE_BGR = (255, 255, 0)


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise ImportError(
            "writing a video needs OpenCV: pip install opencv-python-headless"
        ) from None
    return cv2


class LiveVideo:
    """Collects frames of the live map and writes them as a video.

    Parameters
    ----------
    rate_hz : float
        Frames kept per second of acquisition (> 0); also the video's frame rate, so it plays
        in real time.
    height_px : int
        Height of the map in the video; the width follows the map's aspect.

    Attributes
    ----------
    frames : int
        Frames collected.
    """

    def __init__(self, rate_hz: float = 5.0, *, height_px: int = 360) -> None:
        if not rate_hz > 0:
            raise ValueError(f"rate_hz={rate_hz!r} is invalid: allowed numbers > 0")
        self.rate_hz = float(rate_hz)
        self.height_px = int(height_px)
        self._jpegs: collections.deque[bytes] = collections.deque(maxlen=MAX_FRAMES)
        self._size: tuple[int, int] | None = None
        self._last_s: float | None = None
        self._bar: ColourBar | None = None
        self._bar_rgb: npt.NDArray[np.uint8] | None = None
        self._mark: Event | None = None
        self._lock = threading.Lock()
        table = colormaps[PERFUSION_COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3]
        self._lut = (table[:, ::-1] * 255.0 + 0.5).astype(np.uint8)  # BGR for OpenCV

    @property
    def frames(self) -> int:
        """Frames collected so far."""
        return len(self._jpegs)

    def clear(self) -> None:
        """Forget the frames collected (a new acquisition starts)."""
        with self._lock:
            self._jpegs.clear()
            self._size = None
            self._last_s = None
            self._mark = None

    def mark(self, event: Event) -> None:
        """Show ``event`` in the caption of the frames that follow."""
        with self._lock:
            self._mark = event

    def add(self, update: LiveUpdate) -> bool:
        """Compose a frame of ``update`` unless one was kept less than 1/rate ago.

        Returns
        -------
        bool
            Whether a frame was kept.
        """
        if self._last_s is not None and update.time_s - self._last_s < 0.95 / self.rate_hz:
            return False
        cv2 = _cv2()
        image = self._compose(cv2, update)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            return False
        with self._lock:
            if self._size is not None and self._size != (image.shape[1], image.shape[0]):
                self._jpegs.clear()  # a new map size: a new video
            self._size = (image.shape[1], image.shape[0])
            self._jpegs.append(encoded.tobytes())
            self._last_s = update.time_s
        return True

    def _compose(self, cv2: Any, update: LiveUpdate) -> npt.NDArray[np.uint8]:
        limits = update.limits
        values = np.nan_to_num(update.perfusion, nan=limits.lower)
        scaled = (values - limits.lower) / (limits.upper - limits.lower)
        index = np.clip(scaled * 255.0, 0, 255).astype(np.uint8)
        colour = self._lut[index]
        height = self.height_px
        factor = height / colour.shape[0]
        width = max(1, round(colour.shape[1] * factor))
        colour = cv2.resize(colour, (width, height), interpolation=cv2.INTER_NEAREST)
        if update.delineation is not None:
            for outline in update.delineation.outlines:
                points = np.round((outline[:, ::-1] + 0.5) * factor).astype(np.int32)
                cv2.polylines(colour, [points], True, _OUTLINE_BGR, 1, cv2.LINE_AA)
        bar = ColourBar(limits.lower, limits.upper, update.unit, update.reference_level)
        if self._bar_rgb is None or not bar.close_to(self._bar):
            self._bar = bar
            self._bar_rgb = colourbar_rgb(bar, width_px=150, height_px=height)[:, :, ::-1]
        frame = np.zeros((height + _CAPTION_PX, width + 150, 3), np.uint8)
        frame[:height, :width] = colour
        frame[:height, width:] = self._bar_rgb
        caption = f"t = {update.time_s:6.1f} s"
        if update.delineation is not None:
            area = update.delineation.area_mm2
            caption += (
                f"   hypoperfused {area:.1f} mm2"
                if area is not None
                else f"   hypoperfused {update.delineation.area_px} px"
            )
        mark = self._mark
        if mark is not None:
            caption += f"   | {mark.label} at {mark.time_s:.1f} s"
        # OpenCV's fonts draw ASCII only.
        text = caption.encode("ascii", "replace").decode("ascii")
        cv2.putText(
            frame, text, (6, height + 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1
        )
        return frame

    def write(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the frames collected as a Motion-JPEG AVI (``.avi``).

        Raises
        ------
        ValueError
            When no frame was collected or ``path`` does not end in ``.avi``.
        ImportError
            When OpenCV is not installed.
        lsci.recording.RecordingError
            When the file exists (and ``overwrite`` is false) or cannot be written.
        """
        target = Path(path)
        if target.suffix.lower() != ".avi":
            raise ValueError(f"{target.name}: the video is written as .avi (Motion-JPEG)")
        with self._lock:
            jpegs = list(self._jpegs)
            size = self._size
        if not jpegs or size is None:
            raise ValueError("no live map to put in a video yet: acquire first")
        cv2 = _cv2()
        final = check_target(target, overwrite=overwrite)
        # OpenCV picks the container by the suffix: the temporary name keeps ".avi".
        temporary, descriptor = create_exclusive(final.parent, ".avi")
        os.close(descriptor)
        try:
            writer = cv2.VideoWriter(
                str(temporary),
                cv2.CAP_OPENCV_MJPEG,
                cv2.VideoWriter_fourcc(*"MJPG"),
                self.rate_hz,
                size,
            )
            if not writer.isOpened():
                raise ValueError(f"OpenCV cannot write a Motion-JPEG AVI to {final.parent}")
            try:
                for jpeg in jpegs:
                    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
                    writer.write(image)
            finally:
                writer.release()
            publish(temporary, final, overwrite=overwrite)
        finally:
            temporary.unlink(missing_ok=True)
        return final
