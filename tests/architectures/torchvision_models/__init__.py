# BSD 3-Clause License
#
# Copyright (c) Soumith Chintala 2016,
# All rights reserved.
#
# Redistribution and use in source and binary forms, with or without
# modification, are permitted provided that the following conditions are met:
#
# * Redistributions of source code must retain the above copyright notice, this
#   list of conditions and the following disclaimer.
#
# * Redistributions in binary form must reproduce the above copyright notice,
#   this list of conditions and the following disclaimer in the documentation
#   and/or other materials provided with the distribution.
#
# * Neither the name of the copyright holder nor the names of its
#   contributors may be used to endorse or promote products derived from
#   this software without specific prior written permission.
#
# THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"
# AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO, THE
# IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR PURPOSE ARE
# DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR CONTRIBUTORS BE LIABLE
# FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL, EXEMPLARY, OR CONSEQUENTIAL
# DAMAGES (INCLUDING, BUT NOT LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR
# SERVICES; LOSS OF USE, DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER
# CAUSED AND ON ANY THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY,
# OR TORT (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
# OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""torchvision's own model code (pytorch/vision, BSD-3-Clause, license above), copied so that
`seqgen import` is tested on the real thing although torchvision cannot be installed here (its
wheels on this machine are ABI-incompatible with the installed torch).

Copied verbatim: the model classes and their helpers from torchvision/models/{resnet, vgg,
mobilenetv2, densenet, squeezenet, googlenet, efficientnet}.py, torchvision/ops/misc.py
(ConvNormActivation, Conv2dNormActivation, SqueezeExcitation), torchvision/ops/stochastic_depth.py
and torchvision/models/_utils.py (_make_divisible), torchvision/utils.py (_log_api_usage_once).

Removed, because they download weights or need the rest of torchvision: the `*_Weights`
WeightsEnum classes, `register_model` / `handle_legacy_interface` decorators, `weights=` /
`progress=` plumbing and `_ovewrite_named_param`; each public factory (`resnet18`, ...) is a
plain function that builds the same model from its keyword arguments. Models other than the
ones tested (resnet34, vgg16, densenet161, efficientnet_b1-7, v2, ...) are left out. The files
are reformatted by ruff (line length) and carry `# ruff: noqa`: the code itself is unchanged.
"""
