#!/usr/bin/env python3
"""Runs ONNX models exported by `conjure export` in onnxruntime (the tests' consumer check).

Usage: onnx-run.py JOB_DIR [JOB_DIR ...]

Each JOB_DIR holds `model.onnx` and one `input_NAME.npy` per graph input. For each job the
script runs `onnx.checker.check_model` (full check), then onnxruntime's CPU provider on the
inputs, and writes every graph output as `output_NAME.npy` (float32 or int64 as the graph
says) next to them, plus `info.json` with the model's IR version, opset, input/output names
and metadata_props. All jobs run in one process (one interpreter start for the whole test).
Exit status 1 with the failing job named on the first error.
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort


def run(job):
    path = os.path.join(job, "model.onnx")
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    feeds = {}
    for i in session.get_inputs():
        feeds[i.name] = np.load(os.path.join(job, "input_" + i.name + ".npy"))
    outputs = session.run(None, feeds)
    for meta, value in zip(session.get_outputs(), outputs):
        np.save(os.path.join(job, "output_" + meta.name + ".npy"), value)
    info = {
        "ir_version": model.ir_version,
        "opsets": {o.domain: o.version for o in model.opset_import},
        "inputs": [i.name for i in session.get_inputs()],
        "outputs": [o.name for o in session.get_outputs()],
        "metadata": {p.key: p.value for p in model.metadata_props},
        "producer": model.producer_name,
    }
    with open(os.path.join(job, "info.json"), "w") as f:
        json.dump(info, f)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for job in sys.argv[1:]:
        try:
            run(job)
        except Exception as e:  # report which job failed, then stop
            print(f"{job}: {type(e).__name__}: {e}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
