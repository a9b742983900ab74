"""Unsupervised domain adaptation (FastReID's third system; the clustering baseline of SpCL and
MMT): a trained model adapted to an unlabelled target by rounds of DBSCAN pseudo-labels on the
k-reciprocal Jaccard distance and fine-tuning with the training loop.

Outside pipeline/train on purpose: the train stages list that folder as a dep, and a change
here must not retrain them.
"""
