"""Metrics of paper B checked against scikit-learn on a fixture with every category present."""

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from medlib.ammfm import AUC_CATEGORIES, NUM_CLASSES, TASK_CLASSES, TASKS, evaluate, summarize_runs
from medlib.ammfm.metrics import auc_table, melanoma_table
from medlib.ammfm.tasks import MELANOMA_CATEGORIES


@pytest.fixture
def fixture():
    rng = np.random.default_rng(0)
    n = 60
    targets = np.stack([np.arange(n) % k for k in NUM_CLASSES], axis=1)  # every class present
    probs = []
    for k, n_k in enumerate(NUM_CLASSES):
        logits = rng.normal(size=(n, n_k))
        logits[np.arange(n), targets[:, k]] += 1.0  # informative but imperfect
        p = np.exp(logits)
        probs.append(p / p.sum(1, keepdims=True))
    return probs, targets


def test_table_2_categories():
    assert len(AUC_CATEGORIES) == 17
    assert [c for t, c in AUC_CATEGORIES if t == "DIAG"] == ["BCC", "NEV", "MEL", "MISC", "SK"]
    assert all(c != "ABS" for _, c in AUC_CATEGORIES)
    assert set(MELANOMA_CATEGORIES) <= set(AUC_CATEGORIES)


def test_metrics_match_sklearn(fixture):
    probs, y = fixture
    m = evaluate(probs, y)
    aucs = []
    for task, cat in AUC_CATEGORIES:
        k, c = TASKS.index(task), TASK_CLASSES[task].index(cat)
        expected = roc_auc_score(y[:, k] == c, probs[k][:, c])
        assert m[f"auc/{task}/{cat}"] == pytest.approx(expected)
        aucs.append(expected)
    assert m["avg_auc"] == pytest.approx(np.mean(aucs)) and m["n_auc"] == 17
    accs = [np.mean(probs[k].argmax(1) == y[:, k]) for k in range(8)]
    assert [m[f"acc/{t}"] for t in TASKS] == pytest.approx(accs)
    assert m["avg_acc"] == pytest.approx(np.mean(accs))
    for task, cat in MELANOMA_CATEGORIES:
        k, c = TASKS.index(task), TASK_CLASSES[task].index(cat)
        truth, pred = y[:, k] == c, probs[k].argmax(1) == c
        assert m[f"precision/{task}/{cat}"] == pytest.approx(precision_score(truth, pred))
        assert m[f"sensitivity/{task}/{cat}"] == pytest.approx(recall_score(truth, pred))
        assert m[f"specificity/{task}/{cat}"] == pytest.approx(recall_score(~truth, ~pred))
    assert m["avg_sensitivity"] == pytest.approx(np.mean([m[f"sensitivity/{t}/{c}"] for t, c in MELANOMA_CATEGORIES]))
    table = melanoma_table(m)
    assert table.loc["AUC", "DIAG MEL"] == pytest.approx(100 * m["auc/DIAG/MEL"])
    assert list(auc_table(m)["category"])[:5] == ["BCC", "NEV", "MEL", "MISC", "SK"]


def test_class_names_are_looked_up_in_the_dataset_order(fixture):
    probs, y = fixture
    # the same data with the DIAG classes stored in another order
    order = ["NEV", "BCC", "MEL", "MISC", "SK"]
    perm = [TASK_CLASSES["DIAG"].index(c) for c in order]
    probs2 = list(probs)
    probs2[0] = probs[0][:, perm]
    y2 = y.copy()
    y2[:, 0] = np.argsort(perm)[y[:, 0]]
    tasks = {**{t: list(c) for t, c in TASK_CLASSES.items()}, "DIAG": order}
    a, b = evaluate(probs, y), evaluate(probs2, y2, tasks=tasks)
    assert a == pytest.approx(b)


def test_absent_category_has_no_auc_and_leaves_the_average(fixture):
    probs, y = fixture
    y = y.copy()
    y[:, 0] = np.where(y[:, 0] == 4, 0, y[:, 0])  # no SK case left
    m = evaluate(probs, y)
    assert np.isnan(m["auc/DIAG/SK"]) and m["n_auc"] == 16
    finite = [m[f"auc/{t}/{c}"] for t, c in AUC_CATEGORIES if (t, c) != ("DIAG", "SK")]
    assert m["avg_auc"] == pytest.approx(np.mean(finite))


def test_summarize_runs_mean_and_sample_std():
    runs = [{"avg_auc": 0.86, "avg_acc": 0.75}, {"avg_auc": 0.88, "avg_acc": 0.77}, {"avg_auc": 0.87, "avg_acc": 0.79}]
    s = summarize_runs(runs)
    assert s.loc["avg_auc", "mean"] == pytest.approx(0.87)
    assert s.loc["avg_auc", "std"] == pytest.approx(0.01)  # sqrt(((-.01)^2 + .01^2 + 0) / 2)
    assert s.loc["avg_acc", "std"] == pytest.approx(0.02)
    assert s.loc["avg_auc", "text"] == "87.0±1.0"
    assert s.loc["avg_acc", "n"] == 3


def test_bad_shapes_fail_clearly(fixture):
    probs, y = fixture
    with pytest.raises(ValueError, match=r"task PN: scores must be \(N=60, 3 classes"):
        evaluate([probs[0], probs[0]] + probs[2:], y)


def test_a_never_predicted_category_has_precision_zero_and_stays_in_the_average():
    from medlib.ammfm.metrics import evaluate
    from medlib.ammfm.tasks import MELANOMA_CATEGORIES, TASK_CLASSES, TASKS

    n = 6
    targets = np.zeros((n, len(TASKS)), dtype=np.int64)
    vs = TASKS.index("VS")
    ir = TASK_CLASSES["VS"].index("IR")
    targets[:2, vs] = ir  # two IR cases ...
    probs = []
    for k, task in enumerate(TASKS):
        p = np.full((n, len(TASK_CLASSES[task])), 0.1)
        p[np.arange(n), targets[:, k]] = 0.8  # every task right ...
        if task == "VS":
            p[:, :] = 0.1
            p[:, 0] = 0.8  # ... except VS, always predicted ABS: IR is never predicted
        probs.append(p)
    m = evaluate(probs, targets)
    assert m["precision/VS/IR"] == 0.0 and m["n_predicted/VS/IR"] == 0.0
    assert m["sensitivity/VS/IR"] == 0.0
    others = [m[f"precision/{t}/{c}"] for t, c in MELANOMA_CATEGORIES if t != "VS"]
    # the other seven categories: predicted only where true, so their precision is 1 when predicted at all
    assert m["avg_precision"] == pytest.approx((sum(others) + 0.0) / 8)
