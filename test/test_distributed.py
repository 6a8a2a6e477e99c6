"""Training and evaluation under the real ``torchrun`` with two CPU processes (gloo), which
rendezvous on 127.0.0.1: the same numbers as one process, rank 0 alone writing files, a worker
that dies ending the run with a clear error and an intact checkpoint, and resume."""
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from espnet_ros.models import build
from espnet_ros.training import checkpoint

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
CAMVID_CONFIG = REPO / "config" / "train_espnet_camvid.yaml"

# sitecustomize for the worker processes: every file a worker opens for writing is appended
# to $WRITES_LOG.<rank>, so a test can see which rank wrote what.
AUDIT = '''
import os, sys
_rank = os.environ.get("RANK")
_log = os.environ.get("WRITES_LOG")
if _rank is not None and _log:
    _path = "%s.%s" % (_log, _rank)
    _out = open(_path, "a")
    def _hook(event, args):
        if event != "open" or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \\
            (mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if writing and os.fsdecode(args[0]) != _path:
            _out.write(os.fsdecode(args[0]) + "\\n")
            _out.flush()
    sys.addaudithook(_hook)
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_cmd(nproc, *args):
    return [str(TORCHRUN), "--nnodes", "1", "--nproc-per-node", str(nproc), "--rdzv-backend",
            "c10d", "--rdzv-endpoint", "127.0.0.1:%d" % free_port(), "-m", "espnet_ros.cli"] + list(args)


def env_for(tmp_path, writes_log=None, **extra):
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               **extra)
    if writes_log:
        site = tmp_path / "audit_site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(AUDIT)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        env["WRITES_LOG"] = str(writes_log)
    return env


def run(cmd, env, timeout=240):
    """``cmd`` in a process group of its own: on a timeout the whole group is killed, since
    torchrun's workers would outlive torchrun."""
    proc = subprocess.Popen(cmd, cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out)


# -- evaluation -----------------------------------------------------------------------------

def test_eval_with_two_processes_equals_one(data_dir, tmp_path):
    args = ["eval", "--model", "espnet-p2q8-camvid", "--dataset", "camvid", "--data-root",
            str(data_dir / "camvid"), "--split", "test", "--limit", "20", "--no-plot",
            "--no-progress"]
    one = run([sys.executable, "-m", "espnet_ros.cli"] + args + ["--out", str(tmp_path / "one")],
              env_for(tmp_path))
    assert one.returncode == 0, one.stdout
    two = run(torchrun_cmd(2, *args, "--out", str(tmp_path / "two")), env_for(tmp_path))
    assert two.returncode == 0, two.stdout
    a = json.loads((tmp_path / "one" / "eval.json").read_text())
    b = json.loads((tmp_path / "two" / "eval.json").read_text())
    assert (a["world_size"], b["world_size"]) == (1, 2)
    assert a["images"] == b["images"] == 20
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert a["labelled_pixels"] == b["labelled_pixels"] > 0
    assert a["miou"] == b["miou"] and a["miou_ignored_as_false_positives"] == \
        b["miou_ignored_as_false_positives"]
    assert two.stdout.count("| class mIoU |") == 1  # rank 0 alone prints the report


# -- training -------------------------------------------------------------------------------

def train_args(data_dir, out, batch, *extra):
    # 8 CamVid frames resized to 64x48, 2 epochs; validation on 3 frames (an uneven split)
    return ["train", "--config", str(CAMVID_CONFIG), "--recipe", "espnet-c", "--out", str(out),
            "--data-root", str(data_dir / "camvid"), "--limit", "8", "--val-limit", "3",
            "--epochs", "2", "--batch-size", str(batch), "--workers", "0", "--device", "cpu",
            "--no-progress", "--set", "input_size=[96, 72]",
            "--set", "augment.passes=[{size: [64, 48], crop_resize: 4}]",
            "--set", "train.checkpoint_every=1"] + list(extra)


def weights(path):
    return checkpoint.load(path)["model"]


def test_two_processes_at_batch_b_train_as_one_at_2b(data_dir, tmp_path):
    """Batch norm uses its running statistics (freeze_bn), so each frame's loss is independent
    of the others in its batch: then 2 x b and 1 x 2b are the same computation, up to the
    order of floating-point sums."""
    frozen = ("--set", "train.freeze_bn=true")
    one = run([sys.executable, "-m", "espnet_ros.cli"] + train_args(data_dir, tmp_path / "one", 4, *frozen),
              env_for(tmp_path))
    assert one.returncode == 0, one.stdout
    two = run(torchrun_cmd(2, *train_args(data_dir, tmp_path / "two", 2, *frozen)), env_for(tmp_path))
    assert two.returncode == 0, two.stdout
    assert "distributed: 2 processes (gloo)" in two.stdout
    last_one, last_two = (tmp_path / run / "encoder" / "last.pth" for run in ("one", "two"))
    a, b = weights(last_one), weights(last_two)
    torch.manual_seed(0)  # the seed the first stage builds its model with
    start = build(checkpoint.entry_from_checkpoint(last_one)).state_dict()
    assert a.keys() == b.keys()
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    assert worst < 1e-5, worst
    ts_one, ts_two = (checkpoint.load(p)["train_state"] for p in (last_one, last_two))
    assert ts_one["global_step"] == ts_two["global_step"] == 4  # 2 epochs x 8 frames / 4 a step
    assert len(ts_two["rng_torch_ranks"]) == 2
    assert ts_one["best_miou"] == pytest.approx(ts_two["best_miou"], abs=1e-6)
    assert any(not torch.equal(start[k], v) for k, v in a.items())  # it trained at all


def test_dead_worker_ends_the_run_and_resume_matches_the_uninterrupted_run(data_dir, tmp_path):
    writes = tmp_path / "writes"
    reference = run(torchrun_cmd(2, *train_args(data_dir, tmp_path / "reference", 2)),
                    env_for(tmp_path, writes_log=writes))
    assert reference.returncode == 0, reference.stdout
    rank0 = Path("%s.0" % writes).read_text().split()
    rank1 = Path("%s.1" % writes).read_text().split()
    assert any(p.endswith("last.pth") or ".tmp" in p for p in rank0), rank0  # the audit works
    # (Python's tempfile probes the temporary folder with a file it deletes at once.)
    left = [p for p in rank1 if os.path.exists(p) or p.startswith(str(tmp_path))]
    assert left == [], "rank 1 wrote files: %s" % left

    # Both ranks stop after the checkpoint of step 3 (epoch 2, batch 1); rank 1 is killed.
    proc = subprocess.Popen(torchrun_cmd(2, *train_args(data_dir, tmp_path / "killed", 2)),
                            cwd=str(REPO), env=env_for(tmp_path, ESPNET_ROS_FAULT_HANG_AT="encoder:3"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines, pids, deadline = [], {}, time.monotonic() + 180
    # Lines come through a thread: a readline here would block past the deadline if the run
    # hung without printing.
    queued = queue.Queue()

    def read_lines():
        for text_line in iter(proc.stdout.readline, ""):
            queued.put(text_line)
        queued.put(None)

    reader = threading.Thread(target=read_lines, daemon=True)
    reader.start()
    while len(pids) < 2 and time.monotonic() < deadline:
        try:
            line = queued.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if line is None:
            break
        lines.append(line)
        if "hanging after the checkpoint" in line:
            words = line.split()
            pids[int(words[words.index("rank") + 1])] = int(words[words.index("(pid") + 1].rstrip(")"))
    try:
        assert len(pids) == 2, "".join(lines)
        os.kill(pids[1], signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:  # failed or timed out: no worker may outlive the test
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(30)
    while not queued.empty():
        lines.append(queued.get() or "")
    text = "".join(lines)
    assert proc.returncode != 0, text
    assert "espnet-ros train: error: rank 0: stopped by SIGTERM" in text, text
    last = tmp_path / "killed" / "encoder" / "last.pth"
    assert "the last checkpoint %s (epoch 2, batch 1, step 3) is intact" % last in text, text
    ts = checkpoint.load(last)["train_state"]
    assert (ts["epoch"], ts["batch"], ts["global_step"]) == (1, 1, 3)
    assert not list(last.parent.glob("*.tmp"))

    resumed = run(torchrun_cmd(2, "train", "--out", str(tmp_path / "killed"), "--resume"),
                  env_for(tmp_path))
    assert resumed.returncode == 0, resumed.stdout
    assert "encoder: resuming at epoch 2, batch 1 (step 3)" in resumed.stdout
    for name in ("last.pth", "best.pth"):
        a = weights(tmp_path / "reference" / "encoder" / name)
        b = weights(tmp_path / "killed" / "encoder" / name)
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_sync_bn_is_refused_on_cpu_with_the_reason(data_dir, tmp_path):
    proc = run(torchrun_cmd(2, *train_args(data_dir, tmp_path / "sync", 2, "--set", "train.sync_bn=true")),
               env_for(tmp_path))
    assert proc.returncode != 0
    assert "train.sync_bn needs CUDA" in proc.stdout
