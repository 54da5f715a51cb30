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
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, smoothing: float, overwrite_logits: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        scores = logits.to(torch.promote_types(logits.dtype, torch.float32))  # half precision: in fp32
        log_normalizer = torch.logsumexp(scores, dim=-1)
        mask = targets != PAD_ID
        nll = (log_normalizer - scores.gather(-1, targets.unsqueeze(-1)).squeeze(-1)) * mask
        # eps * mean over the vocabulary of -log p = eps * (log Z - mean(z))
        spread = (log_normalizer - scores.mean(dim=-1)) * mask
        ctx.save_for_backward(logits, targets, log_normalizer, mask)
        ctx.smoothing = smoothing
        ctx.overwrite_logits = overwrite_logits
        nll_sum = nll.sum()
        ctx.mark_non_differentiable(nll_sum)  # for perplexity only
        return ((1.0 - smoothing) * nll + smoothing * spread).sum(), nll_sum

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor, _grad_nll: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        logits, targets, log_normalizer, mask = ctx.saved_tensors
        eps = ctx.smoothing
        # with the caller's consent, fp32 logits become their own gradient: one (tokens, vocab) tensor fewer
        in_place = ctx.overwrite_logits and logits.dtype == log_normalizer.dtype and not logits.is_leaf
        shifted = logits.sub_(log_normalizer.unsqueeze(-1)) if in_place else (
            logits.to(log_normalizer.dtype) - log_normalizer.unsqueeze(-1))
        grad = shifted.exp_()  # softmax
        grad.sub_(eps / logits.size(-1))
        grad.scatter_add_(-1, targets.unsqueeze(-1), torch.full_like(grad[..., :1], eps - 1.0))
        grad.mul_((grad_loss * mask).unsqueeze(-1))
        return grad.to(logits.dtype), None, None, None


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float, *, overwrite_logits: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed label-smoothed cross-entropy (to optimise) and summed NLL (for perplexity), padding ignored.

    logits (..., vocab), targets (...) with PAD_ID where nothing is predicted. With
    overwrite_logits, backward turns computed fp32 logits into their gradient instead of
    allocating one more tensor of their size; a caller that opts in must drop its last
    reference to the logits before backward, so that nothing can read them afterwards.
    """
    return _SmoothedCrossEntropy.apply(logits, targets, smoothing, overwrite_logits)
