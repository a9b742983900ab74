"""One module per stage, each with a ``run`` that does that stage's work on typed params
(stages/<name>.py parses its arguments and calls it): denoise, extract, rerank, fuse, submit,
evaluate, duplicates. The training stages (train, mutual, distill, adapt) call their library
(pipeline.train, pipeline.distill, pipeline.adapt) directly; helpers of the fuse and rerank
stages (tuning_set, model_inputs, oof_fusion, fuse_choice, gain_test, joint_rerank,
score_table) live here beside them."""
