"""Adaptation quality on the digits setting: MOL vs fine-tuning, and EAR's forgetting.

Part 1 (MOL, few-shot): the deployed model is trained on clean digits. Each new
distribution is one corruption (kind × severity); ``SHOTS`` labelled rows per class
of it (from the calibration split) are the support set, the corrupted test split is
scored for accuracy, and the novel classes 8/9 corrupted the same way are the OOD
rows for the energy-score AUROC. Methods, all with ``STEPS`` SGD steps on the same
support:

* ``none``: the deployed model as is;
* ``finetune``: the deployed model fine-tuned with MOL's inner loop (same loss, lr);
* ``finetune_best_lr``: the same with the lr picked per condition *on the test rows*
  from ``FINETUNE_LRS`` (an optimistic upper bound for the baseline);
* ``shift_erm``: ablation — θ trained on the same simulated shifts with the same
  loss and budget but *no inner loop* (``inner_steps=0``), then fine-tuned;
* ``mol_init`` / ``mol``: the meta-initialisation before / after adaptation.

Meta-training sees ``META_KINDS`` only; ``rotation`` is held out.

Part 2 (EAR): starting from the clean domain, ``EAR_DOMAINS`` are added one at a
time with ``EAR_SHOTS`` labelled rows per class; after each addition: accuracy on
every domain so far, routing accuracy, and, as the forgetting reference, a naive
continual learner that fine-tunes the deployed classifier head on each new domain.
Three HDC-routing ablations (:data:`EAR_VARIANTS`) are reported at the end.

Run: ``python benchmarks/adapt_quality.py`` (≈ 5 min on 2 busy cores) →
``benchmarks/results/adapt_quality.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau
from sklearn.metrics import roc_auc_score
from torch import nn

from drift.adapt import EARModel, MetaOODLearner, energy, fine_tune
from drift.digits import (
    CORRUPTIONS,
    DigitsNet,
    DigitsSplit,
    corrupt,
    embed,
    load_digits_split,
    random_corruption,
    train_digits_model,
)

SEEDS = (0, 1, 2)
SHOTS = 5
STEPS = 5
META_KINDS = ("noise", "blur", "occlusion")
SEVERITIES = (3, 5)
FINETUNE_LRS = (0.01, 0.02, 0.05, 0.1)
MOL_PARAMS = dict(inner_steps=STEPS, shots=SHOTS, meta_iterations=150)
EAR_DOMAINS = (("rotation", 4), ("occlusion", 4), ("blur", 5))
EAR_SHOTS = 20
HEAD_EPOCHS = 200  # the naive head fine-tune gets the same budget as an EAR adaptor

RESULTS = Path(__file__).parent / "results" / "adapt_quality.json"


def stratified_rows(y: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate(
        [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
    )


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == y).mean())


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, x_ood: np.ndarray) -> dict[str, float]:
    """Accuracy on the ID rows and energy AUROC (OOD = positive, higher energy = OOD)."""
    _, logits = embed(model, x)
    _, ood_logits = embed(model, x_ood)
    scores = energy(torch.as_tensor(np.concatenate([logits, ood_logits]))).numpy()
    is_ood = np.r_[np.zeros(len(logits)), np.ones(len(ood_logits))]
    return {"accuracy": accuracy(logits, y), "auroc": float(roc_auc_score(is_ood, scores))}


def mol_seed(seed: int, split: DigitsSplit, deployed: DigitsNet) -> dict:
    shift = random_corruption(META_KINDS)
    started = time.perf_counter()
    mol = MetaOODLearner(**MOL_PARAMS, seed=seed).meta_train(deployed, split.x_train, split.y_train, shift)
    meta_seconds = time.perf_counter() - started
    shift_erm = MetaOODLearner(**MOL_PARAMS | {"inner_steps": 0}, seed=seed).meta_train(
        deployed, split.x_train, split.y_train, shift
    )
    rng = np.random.default_rng(1000 + seed)
    conditions = {}
    for kind in CORRUPTIONS:
        for severity in SEVERITIES:
            x_pool = corrupt(split.x_calib, kind, severity, rng)
            x_test = corrupt(split.x_test, kind, severity, rng)
            x_ood = corrupt(split.x_novel, kind, severity, rng)
            support = stratified_rows(split.y_calib, SHOTS, rng)
            sx, sy = x_pool[support], split.y_calib[support]

            def score(
                model: nn.Module, x_test: np.ndarray = x_test, x_ood: np.ndarray = x_ood
            ) -> dict[str, float]:
                return evaluate(model, x_test, split.y_test, x_ood)

            tuned = {
                lr: score(fine_tune(deployed, sx, sy, steps=STEPS, lr=lr, loss_fn=mol.loss_fn, seed=seed))
                for lr in FINETUNE_LRS
            }
            best_lr = max(tuned, key=lambda lr: tuned[lr]["accuracy"])
            conditions[f"{kind}-{severity}"] = {
                "held_out": kind not in META_KINDS,
                "none": score(deployed),
                "finetune": score(fine_tune(deployed, sx, sy, steps=STEPS, lr=mol.inner_lr,
                                            loss_fn=mol.loss_fn, seed=seed)),
                "finetune_best_lr": tuned[best_lr] | {"lr": best_lr},
                "shift_erm": score(shift_erm.adapt(sx, sy, steps=STEPS)),
                "mol_init": score(mol.meta_model_),
                "mol": score(mol.adapt(sx, sy)),
            }
    return {"meta_train_seconds": meta_seconds, "conditions": conditions}


def train_head(head: nn.Linear, features: np.ndarray, y: np.ndarray, seed: int) -> nn.Linear:
    """The forgetting reference: keep training the one classifier head on the new domain."""
    torch.manual_seed(seed)
    optimiser = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)
    inputs, targets = torch.as_tensor(features), torch.as_tensor(y)
    for _ in range(HEAD_EPOCHS):
        loss = nn.functional.cross_entropy(head(inputs), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return head


#: EAR variants built side by side from the same domains: the default (learned)
#: reconfigurator and the HDC-routing ablations of it.
EAR_VARIANTS = {
    "learned_routing_keep99": {},
    "class_routing_keep99": {"routing": "class"},
    "class_routing_nearest": {"routing": "class", "original_keep": None},
    "domain_routing_keep99": {"routing": "domain"},
}


def ear_seed(seed: int, split: DigitsSplit, deployed: DigitsNet) -> dict:
    rng = np.random.default_rng(2000 + seed)
    variants = {
        name: EARModel(deployed, seed=seed, **params).fit(split.x_train, split.y_train)
        for name, params in EAR_VARIANTS.items()
    }
    ear = variants["learned_routing_keep99"]
    head = copy.deepcopy(deployed.classifier)
    test_sets = {"clean": split.x_test}
    stages = []
    for kind, severity in EAR_DOMAINS:
        name = f"{kind}-{severity}"
        rows = stratified_rows(split.y_calib, EAR_SHOTS, rng)
        x_new, y_new = corrupt(split.x_calib[rows], kind, severity, rng), split.y_calib[rows]
        test_sets[name] = corrupt(split.x_test, kind, severity, rng)
        new_before = accuracy(ear.predict(test_sets[name]), split.y_test)
        for variant in variants.values():
            variant.add_domain(x_new, y_new, name)
        train_head(head, embed(deployed, x_new)[0], y_new, seed)
        stage = {"added": name, "adaptor": list(ear.adaptor_specs_[-1].hidden),
                 "original_bonus": ear.original_bonus_,
                 "new_domain_accuracy_before": new_before, "domains": {}}
        for index, (domain, x_test) in enumerate(test_sets.items()):
            features, logits = embed(deployed, x_test)
            with torch.no_grad():
                head_logits = head(torch.as_tensor(features)).numpy()
            stage["domains"][domain] = {
                "deployed_accuracy": accuracy(logits, split.y_test),
                "ear_accuracy": accuracy(ear.predict(x_test), split.y_test),
                "routing_accuracy": float((ear.route(x_test) == index).mean()),
                "finetuned_head_accuracy": accuracy(head_logits, split.y_test),
            }
        stages.append(stage)
    final_by_variant = {
        name: {domain: {"ear_accuracy": accuracy(variant.predict(x), split.y_test),
                        "routing_accuracy": float((variant.route(x) == index).mean())}
               for index, (domain, x) in enumerate(test_sets.items())}
        for name, variant in variants.items()
    }
    return {"stages": stages, "final_by_variant": final_by_variant,
            "proxy_check": proxy_check(seed, split, deployed, rng)}


def proxy_check(seed: int, split: DigitsSplit, deployed: DigitsNet, rng: np.random.Generator) -> dict:
    """Does the NASWOT rank of the candidates agree with their trained accuracy?"""
    kind, severity = EAR_DOMAINS[0]
    rows = stratified_rows(split.y_calib, EAR_SHOTS, rng)
    x_new, y_new = corrupt(split.x_calib[rows], kind, severity, rng), split.y_calib[rows]
    x_test = corrupt(split.x_test, kind, severity, rng)
    proxy, trained = [], []
    for hidden in EARModel(deployed).candidates:
        single = EARModel(deployed, candidates=(hidden,), seed=seed).fit(split.x_train, split.y_train)
        single.add_domain(x_new, y_new, "new")
        proxy.append(next(iter(single.proxy_scores_[0].values())))
        features, _ = embed(deployed, x_test)
        with torch.no_grad():
            trained.append(accuracy(single.adaptors_[0](torch.as_tensor(features)).numpy(), split.y_test))
    tau = kendalltau(proxy, trained).statistic
    return {"domain": f"{kind}-{severity}", "naswot": proxy, "trained_accuracy": trained,
            "kendall_tau": float(tau)}


def mean_std(values: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}


def summarise(per_seed: list[dict]) -> dict:
    """Mean ± std over seeds of the MOL table (per condition and per seen/held-out group)
    and of EAR's final stage."""
    methods = ["none", "finetune", "finetune_best_lr", "shift_erm", "mol_init", "mol"]
    conditions = per_seed[0]["mol"]["conditions"]
    table = {}
    for condition in conditions:
        table[condition] = {
            m: {metric: mean_std([s["mol"]["conditions"][condition][m][metric] for s in per_seed])
                for metric in ("accuracy", "auroc")}
            for m in methods
        }
    groups = {}
    for group, held_out in (("seen_kinds", False), ("held_out_kind", True)):
        names = [c for c in conditions if conditions[c]["held_out"] == held_out]
        groups[group] = {
            m: {metric: mean_std([np.mean([s["mol"]["conditions"][c][m][metric] for c in names])
                                  for s in per_seed])
                for metric in ("accuracy", "auroc")}
            for m in methods
        }
    final = {}
    for domain in per_seed[0]["ear"]["stages"][-1]["domains"]:
        final[domain] = {
            key: mean_std([s["ear"]["stages"][-1]["domains"][domain][key] for s in per_seed])
            for key in ("deployed_accuracy", "ear_accuracy", "routing_accuracy", "finetuned_head_accuracy")
        }
        for variant in EAR_VARIANTS:
            final[domain][f"{variant}_accuracy"] = mean_std(
                [s["ear"]["final_by_variant"][variant][domain]["ear_accuracy"] for s in per_seed])
    new_before = {
        stage["added"]: mean_std([s["ear"]["stages"][i]["new_domain_accuracy_before"] for s in per_seed])
        for i, stage in enumerate(per_seed[0]["ear"]["stages"])
    }
    return {"mol_by_condition": table, "mol_by_group": groups,
            "ear_final": final, "ear_new_domain_accuracy_before": new_before,
            "naswot_kendall_tau": mean_std([s["ear"]["proxy_check"]["kendall_tau"] for s in per_seed])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny model: extra threads only contend on a shared 2-core box
    started = time.perf_counter()
    per_seed = []
    for seed in args.seeds:
        split = load_digits_split(seed)
        deployed = train_digits_model(split.x_train, split.y_train, split.n_classes, seed=seed)
        per_seed.append({"seed": seed, "mol": mol_seed(seed, split, deployed),
                         "ear": ear_seed(seed, split, deployed)})
        print(f"seed {seed} done at {time.perf_counter() - started:.0f}s", flush=True)
    report = {
        "setting": {"seeds": args.seeds, "shots_per_class": SHOTS, "steps": STEPS,
                    "meta_train_kinds": META_KINDS, "severities": SEVERITIES,
                    "finetune_lrs": FINETUNE_LRS, "mol_params": MetaOODLearner(**MOL_PARAMS).get_params(),
                    "ear_domains": EAR_DOMAINS, "ear_shots_per_class": EAR_SHOTS,
                    "torch": torch.__version__, "machine": platform.machine()},
        "summary": summarise(per_seed),
        "per_seed": per_seed,
        "runtime_seconds": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    groups = report["summary"]["mol_by_group"]
    for group, methods in groups.items():
        print(group, {m: round(v["accuracy"]["mean"], 3) for m, v in methods.items()},
              {m: round(v["auroc"]["mean"], 3) for m, v in methods.items()})
    for domain, values in report["summary"]["ear_final"].items():
        print("EAR", domain, {k: round(v["mean"], 3) for k, v in values.items()})
    print(f"wrote {args.out} in {report['runtime_seconds']:.0f}s")


if __name__ == "__main__":
    main()
