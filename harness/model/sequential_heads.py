"""Several output heads on one hidden state, each head's forward *and* backward in turn, so
that only one head's logits (B, S, V) are alive at once (Gloeckle et al. 2024 Sec. 2, Fig. 2).

Meta's memory-efficient heads use it (`objectives/meta.py`); it knows nothing of Meta: a head
is a function from the hidden state to its loss, and a group lists the parameters it uses.
"""

from __future__ import annotations

from typing import Callable

import torch


class SequentialHeads(torch.autograd.Function):
    """The heads' forward and backward run one at a time inside this forward.

    Inputs are the hidden state (detached inside) and every head parameter, explicitly: the
    gradients computed here come back out of `backward` through autograd, so they reach the
    parameters by ordinary accumulation (AccumulateGrad), where DeepSpeed's ZeRO hooks and
    loss scaling see them. The backward of whatever made the hidden state then runs once,
    from the summed gradient.
    """

    @staticmethod
    def forward(ctx, head_ce: list[Callable], weights: list[float], groups: list[list[int]], hidden, *params):
        # A frozen trunk (`train.freeze`) wants no gradient at the hidden state: none is
        # computed, and a head with nothing to learn (Meta's head 1 then) runs forward only.
        need_hidden = ctx.needs_input_grad[3]
        grad_hidden = torch.zeros_like(hidden) if need_hidden else None
        grad_params: list[torch.Tensor | None] = [None] * len(params)
        total = hidden.new_zeros((), dtype=torch.float32)
        ces = []
        for ce_of, weight, group in zip(head_ce, weights, groups):
            wrt = [params[i] for i in group]
            if not (need_hidden or wrt):
                ce = ce_of(hidden)  # grad mode is off inside a Function's forward
                total = total + weight * ce
                ces.append(ce)
                continue
            with torch.enable_grad():
                h = hidden.detach().requires_grad_(need_hidden)
                # A view, so the heads see a non-leaf: module trackers (FlopCounterMode's)
                # hook module inputs, and autograd.grad refuses such hooks on leaves.
                ce = ce_of(h.view_as(h))
                loss = weight * ce
                grads = torch.autograd.grad(loss, [h, *wrt] if need_hidden else wrt)
            if need_hidden:
                grad_hidden += grads[0]
            for i, g in zip(group, grads[1:] if need_hidden else grads):
                grad_params[i] = g if grad_params[i] is None else grad_params[i] + g
            total = total + loss.detach()
            ces.append(ce.detach())
        ctx.save_for_backward(grad_hidden, *grad_params)
        per_head = torch.stack(ces)
        ctx.mark_non_differentiable(per_head)
        return total, per_head

    @staticmethod
    def backward(ctx, grad_total, _grad_per_head):
        grad_hidden, *grad_params = ctx.saved_tensors
        scaled = [None if g is None else g * grad_total for g in grad_params]
        return None, None, None, None if grad_hidden is None else grad_hidden * grad_total, *scaled
