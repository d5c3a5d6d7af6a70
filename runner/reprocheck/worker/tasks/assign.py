"""One-to-one matching of detections: the most pairs, then the largest total IoU, exactly.

Only pairs allowed by the caller (IoU at or above the threshold, same label or not) can match. The candidate
graph splits into connected components (boxes that overlap nothing else are a component of one pair); each
component is solved by the Hungarian algorithm (shortest augmenting paths with potentials, O(n^2 m), the form
in Kuhn 1955 / Munkres 1957 as usually written), with the inner loop over columns vectorised in numpy. Costs are
-(W + IoU) for allowed pairs and 0 for the others, with W larger than any total IoU, so an assignment with more
allowed pairs always costs less: the result has the most matches, and among those the largest total IoU.
"""

from __future__ import annotations

from typing import Any


def match(iou: Any, allowed: Any) -> list[tuple[int, int]]:
    """Pairs (row, column) of an optimal assignment over `allowed` (boolean [n, m]) by `iou` (float [n, m])."""
    import numpy as np

    allowed = np.asarray(allowed, dtype=bool)
    iou = np.asarray(iou, dtype=np.float64)
    pairs: list[tuple[int, int]] = []
    for rows, cols in _components(allowed):
        if len(rows) == 1 and len(cols) == 1:
            pairs.append((rows[0], cols[0]))
            continue
        sub_allowed = allowed[np.ix_(rows, cols)]
        weight = len(rows) + len(cols) + 1.0
        cost = np.where(sub_allowed, -(weight + iou[np.ix_(rows, cols)]), 0.0)
        for r, c in _hungarian(cost):
            if sub_allowed[r, c]:
                pairs.append((rows[r], cols[c]))
    return sorted(pairs)


def _components(allowed: Any) -> list[tuple[list[int], list[int]]]:
    """Connected components of the bipartite graph of allowed pairs (rows and columns without any pair left out)."""
    n, m = allowed.shape
    row_seen, col_seen = [False] * n, [False] * m
    out = []
    for start in range(n):
        if row_seen[start] or not allowed[start].any():
            continue
        rows, cols, stack = [start], [], [("r", start)]
        row_seen[start] = True
        while stack:
            side, k = stack.pop()
            if side == "r":
                for c in allowed[k].nonzero()[0].tolist():
                    if not col_seen[c]:
                        col_seen[c] = True
                        cols.append(c)
                        stack.append(("c", c))
            else:
                for r in allowed[:, k].nonzero()[0].tolist():
                    if not row_seen[r]:
                        row_seen[r] = True
                        rows.append(r)
                        stack.append(("r", r))
        out.append((sorted(rows), sorted(cols)))
    return out


def _hungarian(cost: Any) -> list[tuple[int, int]]:
    """Minimum-cost assignment of every row (rows <= columns; transposed otherwise)."""
    import numpy as np

    if cost.shape[0] > cost.shape[1]:
        return [(r, c) for c, r in _hungarian(cost.T)]
    n, m = cost.shape
    a = np.zeros((n + 1, m + 1))
    a[1:, 1:] = cost
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    p = np.zeros(m + 1, dtype=np.int64)  # p[j]: the row assigned to column j (0: none)
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used
            free[0] = False
            cur = a[i0] - u[i0] - v
            better = free & (cur < minv)
            minv[better] = cur[better]
            way[better] = j0
            candidates = np.where(free, minv, np.inf)
            j1 = int(np.argmin(candidates))
            delta = candidates[j1]
            u[p[used]] += delta
            v[used] -= delta
            minv[free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = int(way[j0])
            p[j0] = p[j1]
            j0 = j1
    return [(int(p[j]) - 1, j - 1) for j in range(1, m + 1) if p[j]]
