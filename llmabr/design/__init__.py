"""Designs: what an LLM (or a person) writes, and how it becomes an SB3 PPO policy.

A design is a folder::

    design.toml   name, origin ("seed" | "llm" | "offline" | "human" | "replay"), parent,
                  network (broadband | 3g | 4g | 5g | satellite | any), notes,
                  shared_trunk (bool, default false: separate actor and critic trunks)
    state.py      torch design: ``def state(m: dict[str, Tensor]) -> dict[str, Tensor]``
                  NADA design:  ``def state_func(bit_rate_kbps_list, buffer_size_second_list,
                  delay_second_list, video_chunk_size_bytes_list, next_chunk_bytes_sizes,
                  video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps)`` (per player, numpy)
    net.py        ``class Trunk(nn.Module)``: ``__init__(self, feature_dims: dict[str, int])``,
                  attribute ``latent_dim: int``, ``forward(features: dict[str, Tensor]) -> Tensor``
                  of shape [B, latent_dim]. Optional for NADA designs (a default trunk then
                  sends normal states to dense layers and time series to 1-D convolutions).

``state`` receives the measurement row split into its layout fields (``simulator.layout``),
each a float32 tensor [B, size] (history fields oldest first, newest in the last column), and
returns named features, each float32 [B, d], roughly within [-1, 1]. Features are passed to
the trunk by name; the policy concatenates them in sorted name order.

Design source is untrusted: ``llmabr.design.format`` only reads files; executing them
(``llmabr.design.loader``) happens only inside the cage (``llmabr.sandbox``) or the caged trainer.
"""
