"""Evaluation: competition and re-id metrics, the submission file, CMC plots, rank lists.

Import from the modules (nothing is re-exported, so using the metrics never pulls in matplotlib):
``metrics`` (top-1, mAP@k, score; the metrics table and metrics.json),
``reid`` (CMC, mAP, mINP with camera filtering; TAR@FAR; centroid gallery),
``submission`` (write/read ``submission.csv``), ``plots`` (CMC CSV and PNG;
``cmc_template.json`` for ``dvc plots``), ``ranklist`` (query + top-k pictures; best and worst queries).
"""
