"""RoPE by definition and the lecture's slide checks, against independent references."""
import math

import pytest
import torch

from lec4.rope import (half_split_rotation_matrix, half_split_to_interleaved, matrix_version_rope,
                       relative_score_grid, rope_by_definition, rope_thetas, rotation_matrix,
                       slide_typo_thetas)


def block_by_block(m: int, d: int, base: float = 10000.0) -> torch.Tensor:
    """R_{Θ,m} assembled independently: torch.block_diag of the d/2 2×2 rotations, θ in plain Python."""
    blocks = []
    for i in range(1, d // 2 + 1):
        theta = base ** (-2 * (i - 1) / d)
        c, s = math.cos(m * theta), math.sin(m * theta)
        blocks.append(torch.tensor([[c, -s], [s, c]], dtype=torch.float64))
    return torch.block_diag(*blocks)


@pytest.mark.parametrize("d", [2, 4, 8, 16])
@pytest.mark.parametrize("m", [0, 1, 5, 37])
def test_rotation_matrix_matches_block_diagonal_definition(d, m):
    torch.testing.assert_close(rotation_matrix(m, d), block_by_block(m, d))


def test_thetas_first_and_last():
    th = rope_thetas(8)
    assert th[0] == 1.0 and math.isclose(th[-1], 10000 ** (-6 / 8))


def test_rotation_matrix_batched_matches_single():
    R = rotation_matrix(torch.arange(6), 8)
    assert R.shape == (6, 8, 8)
    for m in range(6):
        torch.testing.assert_close(R[m], rotation_matrix(m, 8))


def test_rotation_is_orthogonal_and_composes():
    Rm, Rn = rotation_matrix(7, 16), rotation_matrix(3, 16)
    torch.testing.assert_close(Rm.T @ Rm, torch.eye(16, dtype=torch.float64))
    torch.testing.assert_close(Rm.T @ Rn, rotation_matrix(-4, 16))       # R_mᵀ R_n = R_{n−m}


def test_rope_by_definition_rotates_each_position_by_its_own_block_matrix():
    # Independent reference: position t's vector times the block_diag matrix built in plain Python.
    torch.manual_seed(0)
    x = torch.randn(2, 3, 5, 8, dtype=torch.float64)
    expected = torch.stack([x[:, :, t] @ block_by_block(t, 8).T for t in range(5)], dim=2)
    torch.testing.assert_close(rope_by_definition(x), expected)
    shifted = torch.stack([x[:, :, t] @ block_by_block(t + 100, 8).T for t in range(5)], dim=2)
    torch.testing.assert_close(rope_by_definition(x, torch.arange(100, 105)), shifted)


def test_rope_keeps_dtype_and_uses_positions():
    x = torch.randn(1, 1, 3, 4)
    out = rope_by_definition(x, torch.tensor([10, 11, 12]))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out[0, 0, 0], (rotation_matrix(10, 4).float() @ x[0, 0, 0]))


def test_scores_depend_only_on_relative_position():
    torch.manual_seed(1)
    S = relative_score_grid(torch.randn(16), torch.randn(16), torch.arange(12))
    for offset in range(-11, 12):
        diag = torch.diagonal(S, offset)
        torch.testing.assert_close(diag, diag[0].expand_as(diag))
    assert S.std() > 1e-3      # and they do depend on it


def test_slide_typo_same_m_cancels_position():
    # f_k(x_j, m)ᵀ f_q(x_t, m) with one m for both: R_mᵀ R_m = I, so RoPE disappears.
    torch.manual_seed(2)
    q, k = torch.randn(8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    R = rotation_matrix(5, 8)
    torch.testing.assert_close((R @ k) @ (R @ q), k @ q)


def test_slide_typo_thetas_collapse():
    typo, right = slide_typo_thetas(64), rope_thetas(64)
    assert not torch.allclose(typo, right)
    assert (typo[13:] == 0).all() and typo[12] > 0 and (right > 1e-4 - 1e-12).all()


def test_matrix_version_matches_slide_formula_literally():
    torch.manual_seed(3)
    N, d = 6, 8
    Y = torch.randn(N, d, dtype=torch.float64)
    m = torch.arange(1, N + 1, dtype=torch.float64)           # the slide's rows 1 … N
    C = torch.cat([m[:, None] * rope_thetas(d)] * 2, dim=1)
    top, bottom = Y[:, : d // 2], Y[:, d // 2:]
    slide = torch.cat([top, bottom], 1) * torch.cos(C) + torch.cat([-bottom, top], 1) * torch.sin(C)
    torch.testing.assert_close(matrix_version_rope(Y, torch.arange(1, N + 1)), slide)


def test_matrix_version_differs_from_definition_but_is_a_permutation_of_it():
    d = 8
    P = half_split_to_interleaved(d)
    torch.testing.assert_close(P @ P.T, torch.eye(d, dtype=torch.float64))
    for m in [1, 2, 9]:
        M, R = half_split_rotation_matrix(m, d), rotation_matrix(m, d)
        assert not torch.allclose(M, R)
        torch.testing.assert_close(M, P.T @ R @ P)


@pytest.mark.parametrize("d", [0, 3, 7, -2])
def test_odd_head_dim_is_a_clear_error(d):
    with pytest.raises(ValueError, match="even"):
        rotation_matrix(1, d)


def test_bad_inputs():
    with pytest.raises(ValueError, match="even"):
        rope_by_definition(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"\(T,\)"):
        rope_by_definition(torch.randn(1, 4, 4), torch.arange(3))
    with pytest.raises(ValueError, match="integer"):
        rotation_matrix(torch.tensor([0.5]), 4)
