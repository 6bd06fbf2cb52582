"""``convnet explore``: an interactive browser explorer of any model (issue 17).

A local web app, served on 127.0.0.1 only, that shows one input travelling through the network:
every layer's channels as heatmaps, the ``w^T x + b`` behind any activation, predictions,
Grad-CAM, filters, training curves and the confusion matrix.
"""
