"""The padding modes volconv.torch takes, as torch.nn.Conv3d names them.
The kernels read the border themselves (volconv.conv3d's and its gradients'
`padding_mode=`): no padded copy of the input."""

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
