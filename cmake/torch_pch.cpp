// The precompiled <torch/torch.h> is built with this target (src/CMakeLists.txt); nothing else.
