"""Offline training and evaluation (no ROS). The metrics (ConfusionMatrix, scored classes)
live in ``espnet_ros.metrics``, below inference, so that bag scoring and the gate use them too.

    losses      class weights 1/ln(c + p), weighted cross entropy
    recipes     ESPNet two-stage, ESPNet-C, ENet, ERFNet two-stage
    config      YAML configuration with defaults, recipes and overrides
    train       the loop: stages, validation, atomic checkpoints, exact resume, CSV/TensorBoard
    checkpoint  checkpoint format, zoo entries from checkpoints, registration
    evaluate    model x dataset -> EvalReport through the inference core
    report      JSON / Markdown / confusion-matrix PNG
    export      Cityscapes submission files

Submodules are imported on use: this package pulls in nothing heavy by itself.
"""
