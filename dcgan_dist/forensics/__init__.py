"""Forensics: detectors of generated images, trained on a pool of generators and measured
on generators they never saw.

    python -m dcgan_dist.forensics train --workdirs=RUN@even#raw --out_dir=DET ...
    python -m dcgan_dist.forensics evaluate --detectors=DET --sets=NAME=RUN@odd ...

config.py     DetectorConfig: how a detector is trained; its defaults measured best
pool.py       which generators (workdirs, checkpoints, raw or averaged) and their samples
detectors.py  the detectors (a CNN on pixels, spectral ones) and the augmentations
training.py   training a detector under a tf.distribute strategy, checkpointed, exported
protocol.py   the held-out protocol: sets, perturbations, metrics, the table
"""
