#!/usr/bin/env python3
"""Reads a run folder's TensorBoard event files with the `tensorboard` package's own readers and
prints what TensorBoard sees as one JSON object (used by the Swift tests; also handy by hand).

    .build/pyenv/bin/python scripts/tensorboard-dump.py runs/NAME

Output keys:
  files    one entry per events.out.tfevents.* file in name order: its first event's
           file_version, event count and the steps of its SessionLog START events
           (EventFileLoader, which checks every record's masked CRC-32C).
  scalars  {tag: [[step, bits], ...]}    EventAccumulator (size guidance 0: keep everything,
           (bits: the float32 simple_value's IEEE bit pattern, exact in JSON)
  images   {tag: [{step, width, height, decoded: [w, h], mode, sha256}, ...]}  purging
  audio    {tag: [{step, sample_rate, length_frames, content_type, wav: [channels, rate,
           frames], sha256}, ...]}                                             orphaned data
  text     {tag: [{step, plugin, text}, ...]}                                  as TensorBoard does)
  plugins  {plugin: [tags]} as TensorBoard's dashboards see them (plugin_event_accumulator,
           after its legacy-summary migration).
Images are decoded with Pillow, WAV headers read with the standard library's wave module.
"""
import glob
import hashlib
import io
import json
import os
import struct
import sys
import wave

from PIL import Image
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import plugin_event_accumulator as pea
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util import tensor_util


def main(run):
    out = {"files": []}
    for path in sorted(glob.glob(os.path.join(run, "events.out.tfevents.*"))):
        events = list(EventFileLoader(path).Load())
        out["files"].append({
            "name": os.path.basename(path),
            "file_version": events[0].file_version if events else None,
            "count": len(events),
            "session_starts": [e.step for e in events if e.HasField("session_log") and e.session_log.status == 1],
        })
    guidance = {k: 0 for k in (ea.SCALARS, ea.IMAGES, ea.AUDIO, ea.TENSORS, ea.HISTOGRAMS, ea.COMPRESSED_HISTOGRAMS)}
    acc = ea.EventAccumulator(run, size_guidance=guidance)
    acc.Reload()
    tags = acc.Tags()
    out["scalars"] = {t: [[e.step, struct.unpack("<I", struct.pack("<f", e.value))[0]] for e in acc.Scalars(t)] for t in tags["scalars"]}
    out["images"] = {}
    for t in tags["images"]:
        rows = []
        for e in acc.Images(t):
            im = Image.open(io.BytesIO(e.encoded_image_string))
            im.load()
            rows.append({"step": e.step, "width": e.width, "height": e.height, "decoded": [im.width, im.height],
                         "mode": im.mode, "sha256": hashlib.sha256(e.encoded_image_string).hexdigest()})
        out["images"][t] = rows
    out["audio"] = {}
    for t in tags["audio"]:
        rows = []
        for e in acc.Audio(t):
            with wave.open(io.BytesIO(e.encoded_audio_string)) as w:
                header = [w.getnchannels(), w.getframerate(), w.getnframes()]
            rows.append({"step": e.step, "sample_rate": e.sample_rate, "length_frames": e.length_frames,
                         "content_type": e.content_type, "wav": header,
                         "sha256": hashlib.sha256(e.encoded_audio_string).hexdigest()})
        out["audio"][t] = rows
    out["text"] = {}
    for t in tags["tensors"]:
        plugin = acc.SummaryMetadata(t).plugin_data.plugin_name
        rows = []
        for e in acc.Tensors(t):
            value = tensor_util.make_ndarray(e.tensor_proto)
            rows.append({"step": e.step, "plugin": plugin, "text": value.item().decode("utf-8")})
        out["text"][t] = rows
    plugins = pea.EventAccumulator(run, size_guidance={pea.TENSORS: 0})
    plugins.Reload()
    out["plugins"] = {p: sorted(plugins.PluginTagToContent(p)) for p in sorted(plugins.ActivePlugins())}
    print(json.dumps(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: tensorboard-dump.py RUN_FOLDER")
    main(sys.argv[1])
