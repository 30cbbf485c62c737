"""Checkpoints of a sweep: its fingerprint, per-chunk manifests, orbax save and load.

With ``checkpoint_dir`` the results of each finished chunk are saved with
orbax-checkpoint (written to a temporary folder and renamed when complete); a
restarted call of the same sweep loads the saved chunks and computes only the
missing ones. "The same sweep" is checked by a fingerprint of the grid, the
chunking, the shared arguments (tree, shapes, dtypes and a blake2b hash of their
bytes), the function (its code, closure, defaults and the module-level names it
reads, or an explicit ``run_key``; see :mod:`jaxopt_lab.sweep.fingerprint`) and its
output structure: a folder of another sweep raises ``ValueError``. Each chunk folder
carries a manifest (its index, the fingerprint, a checksum of its arrays and of every
file), checked on load, so a moved, renamed, truncated or corrupt chunk raises an
error naming it. :func:`jaxopt_lab.sweep.run_steps` also saves mid-run states of an
unfinished chunk (``state_<chunk>_<steps done>``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable

import jax
import numpy as np

from jaxopt_lab.sweep.fingerprint import _array_digest, _data_part, _function_part, _Hasher

_CHUNK_RE = re.compile(r"^chunk_(\d{6})$")
_STATE_RE = re.compile(r"^state_(\d{6})_(\d{9})$")


def _tree_desc(tree, drop_leading: bool = False) -> list[str]:
    out = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        shape = tuple(np.shape(leaf))[1:] if drop_leading else tuple(np.shape(leaf))
        dtype = np.dtype(leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype)
        out.append(f"{jax.tree_util.keystr(path)}:{dtype.name}{list(shape)}")
    return out


def _fingerprint(funs: dict[str, Callable], hparams, args, kwargs, out_shape, n: int, chunk: int,
                 run_key: str | None, options: str = "") -> dict[str, str]:
    """What identifies a sweep's results, part by part (each a hex digest)."""
    grid = _Hasher()
    grid.put(*_tree_desc(hparams))
    for leaf in jax.tree_util.tree_leaves(hparams):
        grid.put(_array_digest(leaf))
    digest = lambda *parts: hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=20).hexdigest()
    parts = {
        "grid": grid.hexdigest(),
        "chunking": digest(n, chunk, options),
        "data": _data_part(args, kwargs),
        "function": _function_part(funs, run_key),
        "output structure": digest(*_tree_desc(out_shape, drop_leading=True)),
    }
    parts["fingerprint"] = digest(*(f"{k}={v}" for k, v in sorted(parts.items())))
    return parts


_MANIFEST = "sweep_chunk.json"


def _leaves_checksum(leaves) -> str:
    h = hashlib.blake2b(digest_size=20)
    for x in leaves:
        h.update(_array_digest(x).encode())
    return h.hexdigest()


def _file_digest(path: str) -> str:
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Checkpoints:
    """One orbax checkpoint per finished chunk under ``directory/chunk_XXXXXX``.

    Every saved folder holds a manifest (``sweep_chunk.json``): what it is (chunk
    index, steps done), the sweep's fingerprint, a checksum of the saved arrays and
    the size and hash of every file, all checked when it is loaded.
    """

    def __init__(self, directory: str, parts: dict[str, str], n: int, chunk: int):
        import orbax.checkpoint as ocp

        self.dir = os.path.abspath(directory)
        self.fingerprint = parts["fingerprint"]
        self.ckpt = ocp.PyTreeCheckpointer()
        os.makedirs(self.dir, exist_ok=True)
        meta_path = os.path.join(self.dir, "sweep.json")
        meta = {"fingerprint": self.fingerprint, "parts": parts, "num_members": n, "chunk_size": chunk}
        if os.path.exists(meta_path):
            try:
                with open(meta_path) as f:
                    old = json.load(f)
            except (OSError, ValueError) as e:
                raise ValueError(f"`checkpoint_dir` {directory!r}: file {meta_path!r} cannot be read ({e}); "
                                 "use a fresh folder or delete it.") from None
            if old.get("fingerprint") != self.fingerprint:
                old_parts = old.get("parts") or {}
                differ = [k for k in parts if k != "fingerprint" and old_parts.get(k) != parts[k]]
                what = ", ".join(differ) if old_parts else "all (saved by an older version)"
                raise ValueError(
                    f"`checkpoint_dir` {directory!r} holds a different sweep: differs in {what} "
                    f"(grid = hparams, chunking = number of members, chunk_size and steps, data = the "
                    f"shared arguments, function = fun's code, closure and defaults or run_key, output "
                    f"structure = fun's output tree, shapes and dtypes); use a fresh folder or delete it."
                )
        elif jax.process_index() == 0:
            tmp = meta_path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(meta, f)
            os.replace(tmp, meta_path)

    def done(self) -> set[int]:
        out = set()
        for name in os.listdir(self.dir):
            m = _CHUNK_RE.match(name)
            if m and os.path.isdir(os.path.join(self.dir, name)):
                out.add(int(m.group(1)))
        return out

    def path(self, i: int) -> str:
        return os.path.join(self.dir, f"chunk_{i:06d}")

    def _write(self, path: str, leaves: list[np.ndarray], what: dict) -> None:
        # Written whole under a staging name (orbax, then the manifest), then renamed:
        # a killed process leaves a complete folder or none under the final name.
        import shutil

        stage = path + ".partial"
        if jax.process_index() == 0:
            shutil.rmtree(stage, ignore_errors=True)
        self.ckpt.save(stage, {f"leaf_{j:04d}": x for j, x in enumerate(leaves)})
        if jax.process_index() == 0:
            files = {}
            for root, _, names in os.walk(stage):
                for name in sorted(names):
                    full = os.path.join(root, name)
                    files[os.path.relpath(full, stage)] = [os.path.getsize(full), _file_digest(full)]
            manifest = {**what, "fingerprint": self.fingerprint, "num_leaves": len(leaves),
                        "checksum": _leaves_checksum(leaves), "files": files}
            with open(os.path.join(stage, _MANIFEST), "w") as f:
                json.dump(manifest, f)
            shutil.rmtree(path, ignore_errors=True)
            os.rename(stage, path)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"jaxopt_lab.sweep:{path}")

    def _read(self, path: str, what: dict, num_leaves: int) -> list[np.ndarray]:
        mpath = os.path.join(path, _MANIFEST)
        try:
            with open(mpath) as f:
                manifest = json.load(f)
        except FileNotFoundError:
            raise ValueError(f"checkpoint file {mpath!r} is missing: {path!r} is incomplete or was not "
                             "written by this version of jaxopt_lab.sweep; delete it to recompute.") from None
        except (OSError, ValueError) as e:
            raise ValueError(f"checkpoint file {mpath!r} is corrupt ({e}); delete {path!r} to "
                             "recompute.") from None
        if manifest.get("fingerprint") != self.fingerprint:
            raise ValueError(f"checkpoint {path!r} belongs to another sweep (its {_MANIFEST} has another "
                             "fingerprint): a folder was moved between checkpoint folders.")
        for k, v in what.items():
            if manifest.get(k) != v:
                raise ValueError(f"checkpoint {path!r} holds {k} {manifest.get(k)!r}, not {v!r} (its "
                                 f"{_MANIFEST}): a checkpoint folder was renamed or moved.")
        for rel, (size, digest) in sorted(manifest.get("files", {}).items()):
            full = os.path.join(path, rel)
            if not os.path.isfile(full):
                raise ValueError(f"checkpoint file {full!r} is missing.")
            if os.path.getsize(full) != size:
                raise ValueError(f"checkpoint file {full!r} is truncated or altered: "
                                 f"{os.path.getsize(full)} bytes, {size} were saved.")
            if _file_digest(full) != digest:
                raise ValueError(f"checkpoint file {full!r} is corrupt (its checksum differs from the "
                                 "saved one).")
        if manifest.get("num_leaves") != num_leaves:
            raise ValueError(f"checkpoint {path!r} holds {manifest.get('num_leaves')} arrays, "
                             f"the sweep's output has {num_leaves}.")
        try:
            tree = self.ckpt.restore(path)
            leaves = [np.asarray(tree[f"leaf_{j:04d}"]) for j in range(num_leaves)]
        except Exception as e:  # orbax / tensorstore errors on damaged files
            raise ValueError(f"checkpoint {path!r} cannot be read: {type(e).__name__}: {e}") from None
        if _leaves_checksum(leaves) != manifest.get("checksum"):
            raise ValueError(f"checkpoint {path!r}: the restored arrays do not match the saved checksum.")
        return leaves

    def save(self, i: int, leaves: list[np.ndarray]) -> None:
        self._write(self.path(i), leaves, {"kind": "chunk", "chunk": i})

    def load(self, i: int, num_leaves: int) -> list[np.ndarray]:
        return self._read(self.path(i), {"kind": "chunk", "chunk": i}, num_leaves)

    # Mid-run states of an unfinished chunk (run_steps): state_<chunk>_<steps done>.
    def latest_state(self, i: int) -> tuple[int, str | None]:
        best = (0, None)
        for name in os.listdir(self.dir):
            m = _STATE_RE.match(name)
            if m and int(m.group(1)) == i and int(m.group(2)) > best[0]:
                best = (int(m.group(2)), os.path.join(self.dir, name))
        return best

    def save_state(self, i: int, steps: int, leaves: list[np.ndarray]) -> None:
        path = os.path.join(self.dir, f"state_{i:06d}_{steps:09d}")
        self._write(path, leaves, {"kind": "state", "chunk": i, "steps": steps})
        self.drop_states(i, keep=path)

    def load_state(self, i: int, steps: int, path: str, num_leaves: int) -> list[np.ndarray]:
        return self._read(path, {"kind": "state", "chunk": i, "steps": steps}, num_leaves)

    def drop_states(self, i: int, keep: str | None = None) -> None:
        if jax.process_index() != 0:
            return
        import shutil

        for name in os.listdir(self.dir):
            m = _STATE_RE.match(name)
            path = os.path.join(self.dir, name)
            if m and int(m.group(1)) == i and path != keep:
                shutil.rmtree(path, ignore_errors=True)


def _open_checkpoints(directory, run_key: str | None, funs: dict[str, Callable], plan, program: Callable,
                      hparams, args, kwargs, options: str = "") -> tuple[_Checkpoints, object]:
    """The checkpoints of one sweep in ``directory``, and the shape of ``program``'s output.

    ``program`` runs one chunk of the sweep planned by ``plan`` (a
    :class:`jaxopt_lab.sweep.placement._Plan`); ``funs`` are the user's functions that
    the fingerprint names (or ``run_key`` does in their place).
    """
    if run_key is not None and not isinstance(run_key, str):
        raise TypeError(f"`run_key` must be a string or None, got {type(run_key).__name__}.")
    out_shape = jax.eval_shape(lambda h: plan.compute(program, h, args, kwargs), plan.chunk_of(hparams, 0))
    parts = _fingerprint(funs, hparams, args, kwargs, out_shape, plan.n, plan.chunk, run_key, options=options)
    return _Checkpoints(os.fspath(directory), parts, plan.n, plan.chunk), out_shape
