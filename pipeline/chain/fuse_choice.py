"""What the tuned fuse stage submits: per model an option, then weights, never worse than one model.

Per model, every option (raw lists, or re-ranked with one k1 / k2 / lambda setting, on the TTA
or the single-view features; see rerank) is scored per query on the pooled out-of-fold
lists. The default is the model's first option, its TTA 'raw' lists in the rerank stage's order;
another option is taken only where its paired gain over the default passes gain_test's test
(mean > fuse.min_gain_se standard errors), the best-scoring of those that pass. The weights are
then tuned on the chosen options, and the tuned mix is submitted only where its paired gain
over the best single chosen option passes the same test; otherwise that one model is submitted
alone (weight 1, the others 0): a fusion never makes the submission worse than its best
ingredient on the tuning set, nor replaces it on noise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.retrieval.candidates import CandidateLists
from pipeline.chain.oof_fusion import fuse_lists, pooled_per_query, tune_weights_on_folds
from pipeline.chain.gain_test import GainTest, OptionChoice, choose_option, paired_gain
from pipeline.core.errors import DataError

# lists[model][option][fold]: a model's out-of-fold lists under one option
OofLists = Sequence[Mapping[str, Mapping[int, CandidateLists]]]
FoldLabels = Mapping[int, tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class TuningSetSize:
    """How much held-out data the choice rests on (all folds together), and the distractors
    (extract.oof_distractors) each fold's gallery carried besides its held-out images."""

    folds: int
    queries: int
    gallery: int
    identities: int
    distractors: dict[int, int]  # fold -> distractors appended to its held-out gallery


def tuning_set_size(labels: FoldLabels, distractors: Mapping[int, int] | None = None) -> TuningSetSize:
    """``labels[f]``'s gallery ends with ``distractors[f]`` distractor labels (oof_fusion.oof_labels),
    counted apart from the held-out gallery and its identities."""
    distractors = {fold: (distractors or {}).get(fold, 0) for fold in labels}
    identities = set()
    for fold, (query, gallery) in labels.items():
        identities.update(query.tolist())
        identities.update(gallery[: len(gallery) - distractors[fold]].tolist())
    return TuningSetSize(
        folds=len(labels),
        queries=sum(len(query) for query, _ in labels.values()),
        gallery=sum(len(gallery) - distractors[fold] for fold, (_, gallery) in labels.items()),
        identities=len(identities),
        distractors=distractors,
    )


@dataclass(frozen=True)
class FusionChoice:
    """The tuned fuse stage's decision, with the out-of-fold scores and tests it rests on."""

    option_scores: list[dict[str, float]]  # per model: every option's pooled OOF score
    chosen: list[str]  # per model: the option its lists are taken from
    option_choices: list[OptionChoice] | None  # per model: the tests behind ``chosen`` (None: a fixed source)
    fusion_weights: list[float]  # the best mix of the chosen options
    fusion_score: float  # its pooled OOF score
    best_single: int  # the model whose chosen option scores best alone
    fusion_test: GainTest  # the tuned mix against best_single alone
    weights: list[float]  # what is submitted: fusion_weights, or one-hot on best_single
    score: float  # pooled OOF score of what is submitted
    per_query: np.ndarray  # per tuning query, the OOF score of what is submitted (pooled_per_query order)

    @property
    def single(self) -> bool:
        """One model alone is submitted (then it is ``best_single``: no mix passed the test against it)."""
        return sum(weight > 0 for weight in self.weights) == 1


def choose_fusion(
    oof: OofLists, labels: FoldLabels, method: str, grid_step: float, min_gain_se: float, fixed: str | None = None
) -> FusionChoice:
    """Choose each model's option (``fixed``: the same one for all), tune weights, keep the tuned
    mix only where it passes the paired test against the best single model (``min_gain_se``
    standard errors, gain_test). ``oof[m][option][fold]``, ``labels[fold]``."""
    per_query = [{option: pooled_per_query(folds, labels) for option, folds in model.items()} for model in oof]
    scores = [{option: float(values.mean()) for option, values in model.items()} for model in per_query]
    option_choices = None
    if fixed is None:
        option_choices = [choose_option(model, next(iter(model)), min_gain_se) for model in per_query]
        chosen = [choice.chosen for choice in option_choices]
    else:
        chosen = [fixed] * len(oof)
    lists_by_fold = {fold: [model[option][fold] for model, option in zip(oof, chosen)] for fold in labels}
    fusion_weights, fusion_score = tune_weights_on_folds(lists_by_fold, labels, method, grid_step)
    single_scores = [model_scores[option] for model_scores, option in zip(scores, chosen)]
    best = int(np.argmax(single_scores))
    fused = {fold: fuse_lists(lists, fusion_weights, method, len(labels[fold][1])) for fold, lists in lists_by_fold.items()}
    fused_per_query = pooled_per_query(fused, labels)
    fusion_test = paired_gain(fused_per_query, per_query[best][chosen[best]], min_gain_se)
    if fusion_test.passed:
        weights, score, submitted = fusion_weights, fusion_score, fused_per_query
    else:
        weights, score, submitted = [float(m == best) for m in range(len(oof))], single_scores[best], per_query[best][chosen[best]]
    return FusionChoice(scores, chosen, option_choices, fusion_weights, fusion_score, best, fusion_test, weights, score, submitted)


def choice_record(
    choice: FusionChoice, models: Sequence[str], settings: Mapping[str, dict[str, float | int] | None], size: TuningSetSize
) -> dict[str, object]:
    """The fuse.json entries of a tuned run: options, scores, tests, weights and the tuning set."""
    options: dict[str, dict[str, object]] = {
        model: {"chosen": option, "oof_scores": scores}
        for model, option, scores in zip(models, choice.chosen, choice.option_scores)
    }
    for model, option_choice in zip(models, choice.option_choices or []):
        options[model].update(option_choice.record())
    best = f"{models[choice.best_single]} [{choice.chosen[choice.best_single]}]"
    return {
        "oof_score": choice.score,
        "submitted": f"{models[choice.best_single]} alone" if choice.single else "fusion",
        "fusion": {
            "weights": dict(zip(models, choice.fusion_weights)),
            "oof_score": choice.fusion_score,
            "test": {"against": best, **choice.fusion_test.record()},
        },
        "options": options,
        "settings": dict(settings),
        "tuning_set": {
            "folds": size.folds,
            "held_out_queries": size.queries,
            "gallery_images": size.gallery,
            "identities": size.identities,
            "distractors_per_fold": {str(fold): count for fold, count in size.distractors.items()},
        },
    }


def describe_test(test: GainTest) -> str:
    """'+0.0123 +- 0.0045 over 72 queries (k 1: passed)', for the logs."""
    se = f"{test.se:.4f}" if np.isfinite(test.se) else "unknown"
    return f"{test.mean_gain:+.4f} +- {se} over {test.queries} queries (k {test.k:g}: {'passed' if test.passed else 'not passed'})"


def choice_table(choice: FusionChoice, models: Sequence[str], size: TuningSetSize) -> str:
    """A short readable summary: each option's OOF score per model (* = chosen), then the outcome."""
    options = list(dict.fromkeys(option for scores in choice.option_scores for option in scores))
    lines = [
        f"tuned on {size.folds} folds pooled: {size.queries} held-out queries, "
        f"{size.gallery} gallery images, {size.identities} identities; distractors per fold: "
        + ", ".join(f"{fold}: {count}" for fold, count in size.distractors.items()),
        "| option | " + " | ".join(models) + " |",
        "|---|" + "---:|" * len(models),
    ]
    for option in options:
        cells = [
            "–" if option not in scores else f"{scores[option]:.4f}" + ("*" if option == chosen else "")
            for scores, chosen in zip(choice.option_scores, choice.chosen)
        ]
        lines.append(f"| {option} | " + " | ".join(cells) + " |")
    for model, option_choice, scores in zip(models, choice.option_choices or [], choice.option_scores):
        default, chosen = option_choice.default, option_choice.chosen
        if chosen != default:
            lines.append(f"{model}: took {chosen} over {default}: {describe_test(option_choice.tests[chosen])}")
        elif option_choice.tests:
            rival = max(option_choice.tests, key=scores.__getitem__)
            lines.append(f"{model}: kept {default}; best alternative {rival}: {describe_test(option_choice.tests[rival])}")
    mix = ", ".join(f"{m} {w:.2f}" for m, w in zip(models, choice.fusion_weights))
    lines.append(f"fusion of the chosen options ({mix}): {choice.fusion_score:.4f}")
    best, option = models[choice.best_single], choice.chosen[choice.best_single]
    lines.append(f"best single model: {best} [{option}]: {choice.option_scores[choice.best_single][option]:.4f}")
    lines.append(f"fusion against the best single model: {describe_test(choice.fusion_test)}")
    lines.append(f"submitted: {f'{best} alone' if choice.single else 'the fusion'}, out-of-fold score {choice.score:.4f}")
    return "\n".join(lines) + "\n"


def chosen_options(path: str | Path, models: Sequence[str]) -> dict[str, str]:
    """Model -> the option fuse.json says the model's lists were taken from, for each of ``models``."""
    path = Path(path)
    try:
        options = json.loads(path.read_text(encoding="utf-8"))["options"]
        return {model: str(options[model]["chosen"]) for model in models}
    except FileNotFoundError as error:
        raise DataError(f"{path}: missing (run the fuse stage first)") from error
    except ValueError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from error
    except (KeyError, TypeError) as error:
        raise DataError(f"{path}: no 'options' entry with the 'chosen' option of model {error} (rerun the fuse stage)") from error
