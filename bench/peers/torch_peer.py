"""PyTorch version of the benchmark ResNet, and its train, infer and job measurements.

Imported only inside a measurement subprocess (child.py), after the thread
count is set in the environment.
"""

import time

import torch
from torch import nn

# Variant name -> (memory format, compiled with torch.compile).
VARIANTS = {
    "torch-eager": (torch.contiguous_format, False),
    "torch-channels-last": (torch.channels_last, False),
    "torch-compile": (torch.contiguous_format, True),
    "torch-compile-channels-last": (torch.channels_last, True),
}


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        y = torch.relu(self.conv1(x))
        y = self.conv2(y)
        return torch.relu(y + x)


class ResNet(nn.Module):
    """The Keras tutorial ResNet: 7x7 stem, max pool 3/3, three residual blocks, dense head."""

    def __init__(self, channels_in, classes):
        super().__init__()
        self.stem = nn.Conv2d(channels_in, 64, 7, padding=3)
        # Keras BatchNormalization(momentum=0.99, epsilon=1e-3): PyTorch's momentum
        # is the weight of the new batch statistic, so 1 - 0.99.
        self.norm = nn.BatchNorm2d(64, eps=1e-3, momentum=0.01)
        self.pool = nn.MaxPool2d(3, stride=3)
        self.blocks = nn.Sequential(*(ResidualBlock(64) for _ in range(3)))
        self.head = nn.Linear(64, classes)

        # Keras defaults: Glorot-uniform kernels and zero biases.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        x = self.pool(torch.relu(self.norm(self.stem(x))))
        x = self.blocks(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.head(x)


class BasicBlock(nn.Module):
    """torchvision's ResNet basic block: conv, BN, ReLU, conv, BN, add the shortcut, ReLU."""

    def __init__(self, channels_in, channels, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(channels)
        self.shortcut = None
        if stride != 1 or channels_in != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(channels_in, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x):
        y = torch.relu(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet18(nn.Module):
    """ResNet-18 as torchvision builds it: 7x7/2 stem, max pool 3/2, four stages of two blocks."""

    def __init__(self, channels_in, classes):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(channels_in, 64, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1))
        blocks, channels = [], 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(channels, width, stride), BasicBlock(width, width, 1)]
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(512, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


MODELS = {"tutorial": ResNet, "resnet18": ResNet18}
_model = "tutorial"


def configure(threads, seed, model):
    global _model
    _model = model
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    torch.manual_seed(seed)


def backend_info():
    config = torch.__config__.show()
    onednn = next((line.strip() for line in config.splitlines() if "oneDNN" in line), None)
    return {"torch": torch.__version__, "onednn": onednn}


def _build(variant, channels_in, classes):
    memory_format, compiled = VARIANTS[variant]
    model = MODELS[_model](channels_in, classes).to(memory_format=memory_format)
    runner = torch.compile(model) if compiled else model
    return model, runner, memory_format


def _to_images(x_nhwc, memory_format):
    """Convert an NHWC float32 array into an NCHW tensor in the variant's memory format."""
    nchw = torch.from_numpy(x_nhwc).permute(0, 3, 1, 2)
    return nchw.contiguous(memory_format=memory_format)


def _adam(model):
    # Keras Adam defaults; Keras adds epsilon before bias correction and PyTorch
    # after it, which changes the update slightly but not the work done.
    return torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)


def measure_steps(variant, case, x, y, classes, warmup, steps):
    """Time `warmup + steps` training or inference steps on one batch; return step seconds."""
    model, runner, memory_format = _build(variant, x.shape[3], classes)
    images = _to_images(x, memory_format)
    labels = torch.from_numpy(y).long()

    if case == "train":
        model.train()
        optimizer = _adam(model)
        loss_fn = nn.CrossEntropyLoss()

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(runner(images), labels)
            loss.backward()
            optimizer.step()
            return loss.item()
    else:
        model.eval()

        def step():
            with torch.inference_mode():
                return runner(images).sum().item()

    for _ in range(warmup):
        step()
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return seconds


def run_job(variant, data, classes, epochs, batch_size, seed):
    """Train like Keras `model.fit`: shuffled batches, the last one partial, validation each epoch."""
    x_train, y_train, x_val, y_val = data
    model, runner, memory_format = _build(variant, x_train.shape[3], classes)
    optimizer = _adam(model)
    loss_fn = nn.CrossEntropyLoss()
    images = _to_images(x_train, memory_format)
    labels = torch.from_numpy(y_train).long()
    val_images = _to_images(x_val, memory_format)
    val_labels = torch.from_numpy(y_val).long()
    generator = torch.Generator().manual_seed(seed)

    history = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(labels), batch_size):
            index = order[start:start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            batch = images[index].contiguous(memory_format=memory_format)
            loss = loss_fn(runner(batch), labels[index])
            loss.backward()
            optimizer.step()

        model.eval()
        val_loss = 0.0
        with torch.inference_mode():
            for start in range(0, len(val_labels), batch_size):
                logits = runner(val_images[start:start + batch_size])
                batch_labels = val_labels[start:start + batch_size]
                val_loss += loss_fn(logits, batch_labels).item() * len(batch_labels)
        history.append({"loss": loss.item(), "val_loss": val_loss / len(val_labels)})
    return history
