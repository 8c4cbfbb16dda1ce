"""The Restora dock widget: restore, assess or segment an image layer in a worker thread.

The GUI thread only reads the options, starts the worker and turns its result into layers;
the engine runs in the worker (`._run.run`). Progress travels back through a queued Qt signal
to the widget's bar and napari's activity panel. Cancel makes the engine stop at its next
tile or plane. Errors become napari notifications, and nothing is added to the viewer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from magicgui.widgets import (
    CheckBox, ComboBox, Container, FloatSpinBox, Label, ProgressBar, PushButton, RadioButtons, Select, SpinBox,
)
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal
from restora import DEGRADATIONS, RestoraError

from ._axes import LayerAxes, layer_axes
from ._layers import assess_text, class_fractions, legend_html, restore_text, restored_layer, segment_layers
from ._run import OPERATIONS, RANGES, Cancelled, Request, run

if TYPE_CHECKING:
    import napari

log = logging.getLogger(__name__)
_TICKS = 1000  # resolution of the widget's progress bar


class _Relay(QObject):
    """Carries progress from the worker thread to the GUI thread (a queued connection)."""

    progressed = Signal(int, int)


def _device_choices() -> list[str]:
    from restora.engine.device import available_devices  # imports torch: only once the widget opens

    return ["auto", *available_devices()]


def _device_in_use(choice: str) -> str:
    from restora.engine.device import resolve_device

    try:
        return str(resolve_device(choice)) + (" (chosen automatically)" if choice == "auto" else "")
    except RestoraError as e:
        return f"unavailable ({e})"


class RestoraWidget(Container):
    """Dock widget: pick an image layer and an operation, then Run (or Cancel).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers the widget reads and adds to (napari passes it in).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=False)
        self._viewer = viewer
        self._request: Request | None = None
        self._source = None  # the layer being processed
        self._worker = None
        self._pbar = None  # napari's activity-panel progress bar
        self.last_result = None  # the latest result object, for scripting and tests
        self._alive = True  # False once the dock's Qt widgets are gone

        self._layer = ComboBox(label="image", choices=self._image_layers, nullable=True)
        self._axes = Label(label="axes")
        self._operation = RadioButtons(label="operation", choices=OPERATIONS, value="restore", orientation="horizontal")
        self._mode = ComboBox(label="remove", choices=["auto (whatever is found)", "only these"],
                              value="auto (whatever is found)")
        self._degradations = Select(label="degradations", choices=DEGRADATIONS, value=[], visible=False)
        self._max_iterations = SpinBox(label="max iterations", min=1, max=10, value=3)
        self._target = FloatSpinBox(label="target quality", min=0.0, max=1.0, step=0.05, value=0.0,
                                    tooltip="stop once the assessed quality reaches this; 0 = off")
        self._refine = CheckBox(text="second stage (noise)", value=True,
                                tooltip="after the rounds, a noise-model Wiener filter guided by them, where noise was found")
        self._value_range = ComboBox(label="value range", choices=RANGES, value="auto",
                                     tooltip="auto: uint16 by its own min..max, others by their dtype's range")
        self._tile = SpinBox(label="tile size", min=128, max=4096, step=64, value=512,
                             tooltip="largest tile edge in pixels; smaller uses less memory")
        self._device = ComboBox(label="device", choices=_device_choices(), value="auto")
        self._device_info = Label(label="in use")
        self._uncertainty = CheckBox(text="add uncertainty layer", value=False, visible=False)
        self._run = PushButton(text="Run")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(min=0, max=_TICKS, value=0)
        self._status = Label(value="")
        self._legend = Label(value="", visible=False)
        self._status.native.setStyleSheet("font-family: monospace")
        self._status.native.setWordWrap(True)
        self._legend.native.setStyleSheet("font-family: monospace")

        options = Container(labels=True, widgets=[
            self._layer, self._axes, self._operation, self._mode, self._degradations, self._max_iterations,
            self._target, self._refine, self._value_range, self._tile, self._device, self._device_info, self._uncertainty,
        ])
        buttons = Container(layout="horizontal", labels=False, widgets=[self._run, self._cancel])
        self.extend([options, buttons, self._progress, self._status, self._legend])
        self._layer.changed.connect(self._show_axes)
        self._operation.changed.connect(self._show_options)
        self._mode.changed.connect(self._show_options)
        self._device.changed.connect(self._show_device)
        self._run.changed.connect(self.run)
        self._cancel.changed.connect(self.cancel)
        self._relay = _Relay()
        self._relay.progressed.connect(self._on_progress)
        layer_events = [getattr(viewer.layers.events, e) for e in ("inserted", "removed", "moved", "reordered")]
        for event in layer_events:
            event.connect(self._refresh_layers)

        def closed(_obj=None, refresh=self._refresh_layers) -> None:
            # the Qt side is being destroyed (the viewer closes): stop listening to the viewer and
            # stop any running work; the worker's late signals then find the widget gone and only tidy up
            self._alive = False
            for event in layer_events:
                event.disconnect(refresh)
            if self._request is not None:
                self._request.cancel.set()

        self.native.destroyed.connect(closed)
        self._refresh_layers()
        self._show_options()
        self._show_device()

    # -- options ----------------------------------------------------------------------------
    def _image_layers(self, _widget=None) -> list:
        from napari.layers import Image

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def _refresh_layers(self, event=None) -> None:
        self._layer.reset_choices()
        if self._layer.value is None:  # nothing chosen yet: take a new (or the active) image layer
            images = [layer for _, layer in self._image_layers()]
            for candidate in (getattr(event, "value", None), self._viewer.layers.selection.active):
                # ==, not `is`: napari hands plug-ins a proxy of the viewer, whose layers are proxies too
                if candidate is not None and candidate in images:
                    self._layer.value = candidate
                    break
        self._show_axes()

    def _show_axes(self, _value=None) -> None:
        layer = self._layer.value
        if layer is None:
            self._axes.value = "no image layer"
            return
        try:
            self._axes.value = self._layer_axes(layer).describe()
        except RestoraError as e:
            self._axes.value = f"not supported: {e}"

    def _show_options(self, _value=None) -> None:
        restore = self._operation.value == "restore"
        for w in (self._mode, self._max_iterations, self._target, self._refine):
            w.visible = restore
        self._degradations.visible = restore and self._mode.value == "only these"
        self._uncertainty.visible = self._operation.value == "segment"

    def _show_device(self, _value=None) -> None:
        self._device_info.value = _device_in_use(self._device.value)

    @staticmethod
    def _layer_axes(layer) -> LayerAxes:
        if getattr(layer, "multiscale", False):
            raise RestoraError("multiscale (pyramid) layers are not supported; open the full-resolution level")
        return layer_axes(tuple(layer.data.shape), bool(layer.rgb), tuple(getattr(layer, "axis_labels", ()) or ()))

    def _make_request(self, layer) -> Request:
        if self._mode.value == "only these" and self._operation.value == "restore":
            if not self._degradations.value:
                raise RestoraError("choose at least one degradation to remove, or set 'remove' to auto")
            degradations = tuple(self._degradations.value)
        else:
            degradations = "auto"
        return Request(
            operation=self._operation.value, data=layer.data, axes=self._layer_axes(layer),
            degradations=degradations, max_iterations=int(self._max_iterations.value),
            target_quality=float(self._target.value) or None, refine=bool(self._refine.value), value_range=self._value_range.value,
            tile_size=int(self._tile.value), device=self._device.value,
        )

    # -- running ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether an operation is under way."""
        return self._worker is not None

    def run(self, _value=None) -> None:
        """Start the chosen operation on the chosen layer (the Run button)."""
        if self.running:
            return
        layer = self._layer.value
        if layer is None:
            self._fail("choose an image layer first (File > Open, or File > Open Sample > Restora)")
            return
        try:
            request = self._make_request(layer)
        except RestoraError as e:
            self._fail(f"{layer.name!r}: {e}")
            return
        from napari.qt.threading import create_worker
        from napari.utils import progress

        self._request, self._source = request, layer
        self._run.enabled, self._cancel.enabled = False, True
        self._progress.value = 0
        self._legend.visible = False
        self._status.value = f"{request.operation} {layer.name!r} ({request.axes.describe()}) ..."
        self._pbar = progress(total=_TICKS, desc=f"Restora: {request.operation} {layer.name!r}")
        worker_box: list = []

        def report(done: int, total: int) -> None:  # in the worker thread
            if worker_box and worker_box[0].abort_requested:  # napari asked to stop (e.g. on quit)
                raise Cancelled(done, total)
            self._relay.progressed.emit(done, total)

        self._worker = create_worker(
            run, request, report, _start_thread=False,
            _connect={"returned": self._on_returned, "errored": self._on_errored, "finished": self._on_finished},
        )
        worker_box.append(self._worker)
        self._worker.start()

    def cancel(self, _value=None) -> None:
        """Ask the running operation to stop at its next tile or plane (the Cancel button)."""
        if self._request is not None and self.running:
            self._request.cancel.set()
            self._status.value = "cancelling ..."

    def _on_progress(self, done: int, total: int) -> None:
        request, source, pbar = self._request, self._source, self._pbar
        if not self._alive or not self.running or request is None or total <= 0:
            return
        ticks = int(_TICKS * done / total)
        self._progress.value = ticks
        planes = request.axes.planes
        text = f"{request.operation} {source.name!r}"
        if planes > 1:
            plane = min(planes, int(done * planes / total) + 1) if done < total else planes
            text += f": plane {plane} of {planes}"
        self._status.value = text
        if pbar is not None:  # napari's activity panel; its update may process pending events
            pbar.set_description(f"Restora: {text}")
            pbar.update(ticks - pbar.n)

    def _on_returned(self, result) -> None:
        request, layer = self._request, self._source
        self.last_result = result
        if not self._alive:
            return
        added = []
        try:
            if request.operation == "restore":
                added.append(self._viewer.add_layer(_layer_from(restored_layer(layer, result, request))))
                self._status.value = restore_text(result)
            elif request.operation == "segment":
                for data in segment_layers(layer, result, request, bool(self._uncertainty.value)):
                    added.append(self._viewer.add_layer(_layer_from(data)))
                self._legend.value = legend_html(class_fractions(result.labels))
                self._legend.visible = True
                self._status.value = f"degradation map of {layer.name!r} added"
            else:
                self._status.value = assess_text(result)
        except Exception as e:  # leave the viewer as it was
            for new in added:
                if new in self._viewer.layers:
                    self._viewer.layers.remove(new)
            log.exception("adding Restora's result failed")
            self._fail(f"could not add the result of {request.operation} on {layer.name!r}: {e}")
            return
        self._progress.value = _TICKS

    def _on_errored(self, error: BaseException) -> None:
        request, layer = self._request, self._source
        if not self._alive:
            return
        if isinstance(error, Cancelled):
            msg = f"{request.operation} of {layer.name!r} cancelled"
            if request.axes.planes > 1 and error.total > 0:
                msg += f" at plane {min(request.axes.planes, error.done * request.axes.planes // error.total + 1)}" \
                       f" of {request.axes.planes}"
            self._status.value = msg + "; nothing was added"
            show_info(f"Restora: {msg}; nothing was added")
            return
        if isinstance(error, RestoraError):
            self._fail(f"{request.operation} of {layer.name!r} failed: {error}")
        else:
            log.error("Restora %s failed", request.operation, exc_info=(type(error), error, error.__traceback__))
            self._fail(f"{request.operation} of {layer.name!r} failed: {type(error).__name__}: {error}")

    def _on_finished(self) -> None:
        self._worker = None
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        if self._alive:
            self._run.enabled, self._cancel.enabled = True, False

    def _fail(self, message: str) -> None:
        self._status.value = message
        show_error(f"Restora: {message}")


def _layer_from(data):
    from napari.layers import Layer

    return Layer.create(*data)
