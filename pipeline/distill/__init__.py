"""Knowledge distillation: a student trained by the training loop with a frozen teacher's terms.

Outside pipeline/train on purpose: the train stages list that folder as a dep, and a change
here must not retrain them.
"""
