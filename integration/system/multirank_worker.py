"""One rank of the multi-rank trainer test (``test_multirank.py`` starts two): a small model under
``DistributedDataParallel`` on the gloo backend, stepped by ``DistributedRemoteOptimizer`` over
the given daemons. Writes this rank's losses and final parameters to ``<out>/rank<r>.json``.

Usage: python3 multirank_worker.py RANK WORLD INIT_FILE OUT_DIR STEPS URL [URL ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from multirank_model import HYPERPARAMETERS, batch, clamp, load_weights, make_model
from optimizerd.distributed import DistributedRemoteOptimizer
from torch.nn.parallel import DistributedDataParallel


def main(rank: int, world: int, init_file: str, out_dir: str, steps: int, urls: list[str]) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        net = make_model()
        model = DistributedDataParallel(net)
        optimizer = DistributedRemoteOptimizer(
            net.named_parameters(), urls=urls, optimizer="adamw", **HYPERPARAMETERS
        )
        load_weights(net)  # after the optimizer was made: each owner uploads its shards' tensors
        losses = []
        for step in range(1, steps + 1):
            x, y = batch(rank, world)
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step(loss=loss)
            clamp(net)  # changed in place after each step: uploaded before the next one
            losses.append(loss.item())
            assert optimizer.last_metadata["step"] == step
            if step == 2:
                # A step where no rank has a gradient changes nothing, as with one process (it
                # once committed an empty step on every shard, one step ahead of the reference).
                optimizer.zero_grad()
                optimizer.step()
                assert optimizer.session.last_step == step, (optimizer.session.last_step, step)
        result = {
            "losses": losses,
            "owned": optimizer.owned,
            "telemetry": {
                k: v for k, v in optimizer.last_metadata.items() if isinstance(v, (int, float, bool))
            },
            "parameters": {
                name: p.detach().view(-1).view(torch.int32).tolist() for name, p in net.named_parameters()
            },
        }
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6:])
