"""Linear layers: Gemm, MatMul and Einsum with any operands non-constant (attention's q k^T and
attention @ v), and Conv (gradient through the input, as a ConvTranspose)."""

from __future__ import annotations

from smugir.convolution import conv_window, node_attributes
from smugir.errors import UnsupportedOpError


def gemm(b, node, g, need):
    """Y = alpha op(A) op(B) + beta C: dA = alpha g op(B)^T (transposed back), dB likewise, dC = beta g."""
    attrs = node_attributes(node)
    a, w = node.input[:2]
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    trans_a, trans_b = int(attrs.get("transA", 0)), int(attrs.get("transB", 0))
    out = {}
    if a in need:  # dA = alpha g op(B)^T, or its transpose when A was transposed
        out[a] = b.add("Gemm", [w, g], alpha=alpha, transA=trans_b, transB=1) if trans_a else \
            b.add("Gemm", [g, w], alpha=alpha, transB=0 if trans_b else 1)
    if w in need:  # dB = alpha op(A)^T g, or its transpose
        out[w] = b.add("Gemm", [g, a], alpha=alpha, transA=1, transB=trans_a) if trans_b else \
            b.add("Gemm", [a, g], alpha=alpha, transA=0 if trans_a else 1)
    if len(node.input) > 2 and node.input[2] in need:
        scaled = b.add("Mul", [g, b.const(beta)])
        out[node.input[2]] = b.unbroadcast(scaled, b.shape(node.output[0], node), node.input[2], node)
    return out


def _swap_last(b, tensor, rank):
    return b.add("Transpose", [tensor], perm=[*range(rank - 2), rank - 1, rank - 2])


def matmul(b, node, g, need):
    """numpy matmul: dA = g B^T, dB = A^T g over the last two axes, summed over broadcast batch
    axes; a 1-D operand is a matrix with a unit axis added (and removed again)."""
    a, w = node.input[:2]
    a_rank, w_rank = b.rank(a, node), b.rank(w, node)
    out_shape = b.shape(node.output[0], node)
    if a_rank == 2 and w_rank == 2 and w not in need:  # the common dense layer x W: one node
        return {a: b.add("MatMul", [g, b.add("Transpose", [w], perm=[1, 0])])}
    a2 = b.add("Unsqueeze", [a, b.ints([0])]) if a_rank == 1 else a
    w2 = b.add("Unsqueeze", [w, b.ints([1])]) if w_rank == 1 else w
    g_shape = list(out_shape)
    if a_rank == 1:
        g_shape.insert(len(g_shape) - (0 if w_rank == 1 else 1), 1)
    if w_rank == 1:
        g_shape.append(1)
    g2 = b.add("Reshape", [g, b.ints(g_shape)]) if len(g_shape) != len(out_shape) else g
    a2_shape = (1,) + b.shape(a, node) if a_rank == 1 else b.shape(a, node)
    w2_shape = b.shape(w, node) + (1,) if w_rank == 1 else b.shape(w, node)
    out = {}
    for operand, product, shape in (
        (a, lambda: b.add("MatMul", [g2, _swap_last(b, w2, len(w2_shape))]), a2_shape),
        (w, lambda: b.add("MatMul", [_swap_last(b, a2, len(a2_shape)), g2]), w2_shape),
    ):
        if operand in need:
            full = product()
            full_shape = tuple(g_shape[:-2]) + tuple(shape[-2:])
            if tuple(shape) != full_shape:
                padded = (1,) * (len(full_shape) - len(shape)) + tuple(shape)
                axes = [i for i, (f, s) in enumerate(zip(full_shape, padded)) if s == 1 and f != 1]
                full = b.reduce("ReduceSum", full, axes) if axes else full
            out[operand] = b.add("Reshape", [full, b.add("Shape", [operand])])
    return out


def _einsum_terms(b, node) -> tuple[list[str], str]:
    """The operands' letters and the output's, with "..." written as letters and the implicit output made explicit."""
    equation = node_attributes(node)["equation"]
    equation = (equation.decode() if isinstance(equation, bytes) else equation).replace(" ", "")
    lhs, arrow, output = equation.partition("->")
    terms, ellipsis = lhs.split(","), ""
    if "..." in lhs:  # right-aligned broadcast axes, named with letters the equation does not use
        free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz" if c not in equation]
        widths = [b.rank(x, node) - len(t.replace("...", "")) for x, t in zip(node.input, terms)]
        ellipsis = "".join(free[: max(w for w, t in zip(widths, terms) if "..." in t)])
        terms = [t.replace("...", ellipsis[len(ellipsis) - w:]) for w, t in zip(widths, terms)]
        output = output.replace("...", ellipsis)
    if not arrow:  # implicit output: the ellipsis axes, then the letters seen once, alphabetically
        joined = "".join(terms)
        output = ellipsis + "".join(sorted(c for c in set(joined) if joined.count(c) == 1 and c not in ellipsis))
    return terms, output


def einsum(b, node, g, need):
    """The gradient of an operand is the einsum of the output gradient with the other operands,
    back to the operand's letters; axes it was broadcast along are summed, letters it alone sums
    over get the same gradient along them."""
    terms, output = _einsum_terms(b, node)
    sizes: dict[str, int] = {}
    for y, t in zip(node.input, terms):
        for c, s in zip(t, b.shape(y, node)):
            sizes[c] = max(sizes.get(c, 1), s)
    out = {}
    for k, (x, term) in enumerate(zip(node.input, terms)):
        if x not in need:
            continue
        if len(set(term)) != len(term):
            raise UnsupportedOpError(node.name, "Einsum", "with a repeated index in one operand (a diagonal)", ["Einsum without diagonals"])
        others = [(y, t) for j, (y, t) in enumerate(zip(node.input, terms)) if j != k]
        available = set(output).union(*(set(t) for _, t in others))
        kept = "".join(c for c in term if c in available)
        grad = b.add("Einsum", [g, *(y for y, _ in others)], equation=",".join([output, *(t for _, t in others)]) + "->" + kept)
        shape = dict(zip(term, b.shape(x, node)))
        broadcast = [i for i, c in enumerate(kept) if shape[c] == 1 and sizes[c] != 1]
        if broadcast:
            grad = b.reduce("ReduceSum", grad, broadcast)
        if kept != term:
            grad = b.add("Unsqueeze", [grad, b.ints([i for i, c in enumerate(term) if c not in available])])
            grad = b.add("Expand", [grad, b.add("Shape", [x])])
        out[x] = grad
    return out


def conv(b, node, g, need):
    if node.input[1] in need:
        raise UnsupportedOpError(node.name, "Conv", "with a gradient through its weight", ["Conv(x, const W)"])
    out = {}
    if len(node.input) > 2 and node.input[2] in need:
        out[node.input[2]] = b.reduce("ReduceSum", g, [0, *range(2, b.rank(node.output[0], node))], keepdims=0)
    if node.input[0] not in need:
        return out
    x_shape = b.shape(node.input[0], node)
    g_shape = b.shape(node.output[0], node)
    window = conv_window(node, b.shape(node.input[1], node), x_shape[2:])
    kernel, strides, dilations, begin, end, span = window.kernel, window.strides, window.dilations, window.pads_begin, window.pads_end, window.span
    # ConvTranspose output = s (g - 1) + span - begin - end + output_padding must give back x's size.
    extra = [i - (s * (o - 1) + sp - pb - pe) for i, s, o, sp, pb, pe in zip(x_shape[2:], strides, g_shape[2:], span, begin, end)]
    # Input rows the forward conv never read (floor division) get a zero gradient via output_padding.
    if any(e < 0 or e >= max(s, d) for e, s, d in zip(extra, strides, dilations)):
        raise UnsupportedOpError(node.name, "Conv", f"with geometry whose transpose cannot be expressed (output padding {extra})", ["Conv"])
    out[node.input[0]] = b.add(
        "ConvTranspose",
        [g, node.input[1]],
        kernel_shape=kernel,
        strides=strides,
        dilations=dilations,
        pads=begin + end,
        output_padding=extra,
        group=int(node_attributes(node).get("group", 1)),
    )
    return out


RULES = {"Gemm": gemm, "MatMul": matmul, "Einsum": einsum, "Conv": conv}
