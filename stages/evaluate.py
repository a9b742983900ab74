"""evaluate: the score table (each model, each model re-ranked, each model with the lists the
fuse stage chose for it, the fused ranking and the submission file as written), CMC curves
and rank-list pictures. Needs query/gallery labels; without them it records that nothing
could be scored."""

from __future__ import annotations

from pipeline.chain.evaluate_run import RankListImages, score_models, score_submission, write_scores, write_unscored
from pipeline.chain.evaluate_step import Truth, score_lists
from pipeline.chain.fuse_choice import chosen_options
from pipeline.chain.model_inputs import ModelInputs
from pipeline.core.cli import run_stage, stage_parser
from pipeline.data.cache import open_split
from pipeline.data.self_match import recorded_pairs
from pipeline.evaluate.submission import read_submission
from pipeline.core.params import StageParams
from pipeline.retrieval.candidates import load_candidate_sets


def main(argv: list[str] | None = None) -> None:
    args = stage_parser(__doc__).parse_args(argv)
    params = StageParams(args.params)
    cfg, models = params.evaluate, params.train.models
    fused = load_candidate_sets(params.fuse.out)["fused"]
    chosen = chosen_options(params.fuse.weights_out, models)
    query, gallery = open_split(params.cache(), "query"), open_split(params.cache(), "gallery")
    if "label" not in query.table or "label" not in gallery.table:
        write_unscored(cfg)
        return
    own = recorded_pairs(params.denoised(), query.table["image"], gallery.table["image"])
    truth = Truth(query.table, gallery.table, own)
    inputs = {m: ModelInputs.read(params.candidates(m), params.features(m)) for m in models}
    rows = score_models(inputs, chosen, truth, cfg)
    rows["fused"] = score_lists(fused, truth, cfg)
    submit = params.submit
    submitted = read_submission(submit.out, query.table["image"].tolist(), gallery.table["image"].tolist(), submit.length)
    rows["submission"] = score_submission(submitted, submit.length, truth, cfg)
    masks = {m: i.features.foreground for m, i in inputs.items() if i.features.foreground is not None}
    write_scores(cfg, rows, fused, truth, RankListImages(query.images, gallery.images), masks)


if __name__ == "__main__":
    run_stage(main)
