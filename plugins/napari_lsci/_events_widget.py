"""Events widget: the event markers of a recording, and a jump to the frame of each."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, Container, Label, PushButton

from napari_lsci._ui import fit_to_dock, image_layers

if TYPE_CHECKING:
    import napari.viewer

__all__ = ["EventsWidget", "event_text"]


def event_text(event: dict[str, Any]) -> str:
    """How an event is listed: ``"needling start — 12.5 s (frame 250)"``."""
    return f"{event['label']} — {event['time_s']:.1f} s (frame {event['frame_index']})"


class EventsWidget(Container):
    """List the events stored in a recording and move the frame slider to one of them.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer.

    Attributes
    ----------
    layer : magicgui ComboBox
        Layers read from recordings that carry events.
    event : magicgui ComboBox
        The events of the chosen layer (values are their positions in :meth:`events`).
    go_button : magicgui PushButton
        Calls :meth:`go`.
    summary : magicgui Label
        How many events the layer has.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = viewer
        self.layer = ComboBox(label="Recording layer", choices=self._layer_choices)
        self.event = ComboBox(label="Event", choices=self._event_choices, nullable=True)
        self.go_button = PushButton(text="Go to event")
        self.summary = Label(value="")
        self.extend([self.layer, self.event, self.go_button, self.summary])
        self.layer.changed.connect(self._layer_changed)
        self.go_button.clicked.connect(self.go)
        self._layer_changed()
        fit_to_dock(self)

    def _layer_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [
            (layer.name, layer)
            for layer in image_layers(self.viewer)
            if layer.metadata.get("events") is not None
        ]

    def events(self) -> list[dict[str, Any]]:
        """The events of the chosen layer: dicts with label, time_s and frame_index."""
        layer = self.layer.value
        return [] if layer is None else list(layer.metadata.get("events", []))

    def _event_choices(self, _widget: Any = None) -> list[tuple[str, int]]:
        return [(event_text(event), index) for index, event in enumerate(self.events())]

    def reset_choices(self, *_args: Any) -> None:
        """Refresh the layer and event lists (napari calls it when layers change)."""
        super().reset_choices()
        self._layer_changed()

    def _layer_changed(self, _value: Any = None) -> None:
        self.event.reset_choices()
        count = len(self.events())
        self.summary.value = f"{count} event{'s' if count != 1 else ''}"

    def go(self) -> int | None:
        """Show the first frame at or after the chosen event.

        Returns
        -------
        int or None
            The frame index shown (world axis 0), ``None`` when no event is chosen.
        """
        if self.event.value is None:
            return None
        frame = int(self.events()[self.event.value]["frame_index"])
        if self.viewer.dims.ndim >= 3:
            # World axis 0 is the raw frame index for every layer the reader makes.
            self.viewer.dims.set_point(0, float(frame))
        return frame
