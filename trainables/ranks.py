"""One run on several processes (PyTorch DDP): each process is a rank of a group and trains its share of every batch.

Every rank builds the same ``Trainer`` from the same config and seed, so the model, the optimizer, the batch order and
the random draws are the same on all of them. A rank keeps the images ``rank::size`` of each batch (``Group.share``),
DDP averages the gradients over the ranks, and each epoch's numbers are sums over all ranks before they are divided:
the whole split's loss and accuracy, as one process would measure them. With the batch size a multiple of the
group's size, every rank's share of a training batch is the same size, so the averaged gradient is the whole batch's.
"""

from __future__ import annotations

import dataclasses
import datetime

import torch
import torch.distributed as dist

# A rank that dies leaves the others waiting in a collective; they give up after this long, and the trial is retried
# from its last checkpoint. Longer than any one step or evaluation of a rank.
TIMEOUT_S = 300


@dataclasses.dataclass(frozen=True)
class Group:
    """This process's place in a run: rank ``rank`` of ``size`` (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1

    @property
    def many(self) -> bool:
        """Whether the run has other ranks than this one."""
        return self.size > 1

    def share(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's images of a batch: every ``size``-th from its rank on."""
        return x[self.rank :: self.size] if self.many else x

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` summed over every rank (in float64: counts of images stay exact)."""
        values = values.double()
        if self.many:
            dist.all_reduce(values)
        return values

    def whole(self, part: torch.Tensor) -> torch.Tensor:
        """A batch's values put back in the batch's order from every rank's share (``share``'s inverse); on the CPU."""
        if not self.many:
            return part.cpu()
        parts: list[torch.Tensor | None] = [None] * self.size
        dist.all_gather_object(parts, part.cpu())
        out = torch.empty(sum(len(p) for p in parts), dtype=part.dtype)
        for rank, p in enumerate(parts):
            out[rank :: self.size] = p
        return out


ONE = Group()


def join(address: str, rank: int, size: int, device: torch.device) -> Group:
    """Join the group of ``size`` processes whose rank 0 listens at ``address`` (``host:port``): NCCL on GPUs, gloo
    on CPUs. Returns once every rank has joined."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = datetime.timedelta(seconds=TIMEOUT_S)
    dist.init_process_group(backend, init_method=f"tcp://{address}", rank=rank, world_size=size, timeout=timeout)
    return Group(rank, size)


def leave(together: bool = False) -> None:
    """Leave the group this process joined (a reused trial process joins the next trial's); ``together``: once
    every rank is leaving (at a run's end), so that none closes its connections while another still uses them."""
    if dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()
