"""Forensics: detectors of generated images, trained on a pool of generators and measured
on generators they never saw.

    python -m dcgan_dist.forensics train --workdirs=RUN@even#raw --out_dir=DET ...
    python -m dcgan_dist.forensics evaluate --detectors=DET --sets=NAME=RUN@odd ...

pool.py     which generators (workdirs, checkpoints, raw or averaged) and their samples
detectors.py  the detectors (a CNN on pixels, a spectral one) and the augmentations
training.py   training a detector under a tf.distribute strategy, checkpointed, exported
protocol.py   the held-out protocol: sets, perturbations, metrics, the table
"""
