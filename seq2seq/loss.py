"""Label-smoothed cross-entropy over the vocabulary as one autograd node.

Built from log_softmax, gather and mean, autograd keeps several (tokens, vocab) tensors and
passes over them about eight times in backward. The gradient has a closed form,
softmax(z) - (1 - eps) onehot(y) - eps / V, that needs three passes and one such tensor.
"""

from __future__ import annotations

import torch

from seq2seq.special_ids import PAD_ID


class _SmoothedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
        scores = logits.to(torch.promote_types(logits.dtype, torch.float32))  # half precision: in fp32
        log_normalizer = torch.logsumexp(scores, dim=-1)
        mask = targets != PAD_ID
        nll = (log_normalizer - scores.gather(-1, targets.unsqueeze(-1)).squeeze(-1)) * mask
        # eps * mean over the vocabulary of -log p = eps * (log Z - mean(z))
        spread = (log_normalizer - scores.mean(dim=-1)) * mask
        ctx.save_for_backward(logits, targets, log_normalizer, mask)
        ctx.smoothing = smoothing
        nll_sum = nll.sum()
        ctx.mark_non_differentiable(nll_sum)  # for perplexity only
        return ((1.0 - smoothing) * nll + smoothing * spread).sum(), nll_sum

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor, _grad_nll: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        logits, targets, log_normalizer, mask = ctx.saved_tensors
        eps = ctx.smoothing
        # computed logits are read by nothing after the loss, so (unless half) they become their own gradient
        in_place = logits.dtype == log_normalizer.dtype and not logits.is_leaf
        shifted = logits.sub_(log_normalizer.unsqueeze(-1)) if in_place else (
            logits.to(log_normalizer.dtype) - log_normalizer.unsqueeze(-1))
        grad = shifted.exp_()  # softmax
        grad.sub_(eps / logits.size(-1))
        grad.scatter_add_(-1, targets.unsqueeze(-1), torch.full_like(grad[..., :1], eps - 1.0))
        grad.mul_((grad_loss * mask).unsqueeze(-1))
        return grad.to(logits.dtype), None, None


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed label-smoothed cross-entropy (to optimise) and summed NLL (for perplexity), padding ignored.

    logits (..., vocab), targets (...) with PAD_ID where nothing is predicted. Backward
    overwrites computed fp32 logits with their gradient: read them before it, never after.
    """
    return _SmoothedCrossEntropy.apply(logits, targets, smoothing)
