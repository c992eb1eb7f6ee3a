"""Hand-written torch references for the specs in this folder (tests/test_multi_corpus.py).

Each is written as its source writes it (the paper's or the named repository's module), with
the submodules registered in the order their forward calls them, so that a state_dict copied in
order lands on the generated model's matching tensors (the test checks every shape).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


class NeuMF(nn.Module):
    """guoyang9/NCF's `NCF(user_num, item_num, factor_num, num_layers=3, dropout, "NeuMF-end")`."""

    def __init__(self, users: int = 100, items: int = 200, f: int = 8, p: float = 0.1) -> None:
        super().__init__()
        num_layers = 3
        self.embed_user_GMF = nn.Embedding(users, f)
        self.embed_item_GMF = nn.Embedding(items, f)
        self.embed_user_MLP = nn.Embedding(users, f * (2 ** (num_layers - 1)))
        self.embed_item_MLP = nn.Embedding(items, f * (2 ** (num_layers - 1)))
        mlp: list[nn.Module] = []
        for i in range(num_layers):
            input_size = f * (2 ** (num_layers - i))
            mlp += [nn.Dropout(p=p), nn.Linear(input_size, input_size // 2), nn.ReLU()]
        self.MLP_layers = nn.Sequential(*mlp)
        self.predict_layer = nn.Linear(f * 2, 1)

    def forward(self, user: torch.Tensor, item: torch.Tensor) -> torch.Tensor:
        output_gmf = self.embed_user_GMF(user) * self.embed_item_GMF(item)
        interaction = torch.cat((self.embed_user_MLP(user), self.embed_item_MLP(item)), -1)
        output_mlp = self.MLP_layers(interaction)
        prediction = self.predict_layer(torch.cat((output_gmf, output_mlp), -1))
        return prediction.view(-1)


class WideDeep(nn.Module):
    """Wide & Deep: sigmoid(wide(dense) + deep([dense, embedded ids]))."""

    def __init__(
        self, vocab: int = 1000, emb: int = 8, hidden: int = 256, p: float = 0.2, n_dense: int = 13,
        n_fields: int = 8,
    ) -> None:  # fmt: skip
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.deep = nn.Sequential(
            nn.Linear(n_dense + n_fields * emb, hidden),
            nn.ReLU(),
            nn.Dropout(p),
            nn.Linear(hidden, hidden // 2),
            nn.ReLU(),
            nn.Dropout(p),
            nn.Linear(hidden // 2, 1),
        )
        self.wide = nn.Linear(n_dense, 1)

    def forward(self, dense: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        deep_in = torch.cat([dense, self.embedding(cats).flatten(1)], dim=1)
        return torch.sigmoid(self.deep(deep_in) + self.wide(dense)).squeeze(1)


class TwoTowerRetrieval(nn.Module):
    """Two id towers scored by a dot product; returns (score, user embedding, item embedding)."""

    def __init__(
        self, users: int = 500, items: int = 1000, hidden: int = 64, dim: int = 32
    ) -> None:
        super().__init__()
        self.user_tower = nn.Sequential(
            nn.Embedding(users, hidden),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, dim),
        )
        self.item_tower = nn.Sequential(
            nn.Embedding(items, hidden),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, dim),
        )

    def forward(
        self, user: torch.Tensor, item: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        u, i = self.user_tower(user), self.item_tower(item)
        return (u * i).sum(1), u, i


class FaceMultiTask(nn.Module):
    """A shared CNN backbone with age, gender and race heads; returns (age, gender, race)."""

    def __init__(self, width: int = 32, races: int = 5) -> None:
        super().__init__()
        w = width
        self.backbone = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.age = nn.Sequential(nn.Linear(4 * w, 64), nn.ReLU(), nn.Linear(64, 1))
        self.gender = nn.Linear(4 * w, 2)
        self.race = nn.Sequential(nn.Dropout(0.3), nn.Linear(4 * w, races))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.backbone(x)
        return self.age(f), self.gender(f), self.race(f)


class DeepSupervision(nn.Module):
    """An encoder-decoder with side outputs at two decoder depths, in training mode only."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.enc = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.dec2 = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(64, 32, 3, padding=1), nn.ReLU()
        )
        self.dec1 = nn.Sequential(
            nn.Upsample(scale_factor=2), nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, num_classes, 1),
        )  # fmt: skip
        self.side2 = nn.Conv2d(32, num_classes, 1)
        self.side3 = nn.Conv2d(64, num_classes, 1)

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        bottleneck = self.enc(x)
        d2 = self.dec2(bottleneck)
        out = self.dec1(d2)
        if not self.training:
            return out, None, None
        up = nn.functional.interpolate
        aux2 = up(self.side2(d2), scale_factor=2, mode="bilinear", align_corners=False)
        aux3 = up(self.side3(bottleneck), scale_factor=4, mode="bilinear", align_corners=False)
        return out, aux2, aux3


class _RetinaHead(nn.Module):
    """torchvision's RetinaNetClassificationHead / RegressionHead (norm_layer=None)."""

    def __init__(self, c: int, anchors: int, per_anchor: int) -> None:
        super().__init__()
        conv: list[nn.Module] = []
        for _ in range(4):
            conv += [nn.Conv2d(c, c, 3, padding=1), nn.ReLU()]
        self.conv = nn.Sequential(*conv)
        self.out = nn.Conv2d(c, anchors * per_anchor, 3, padding=1)
        self.per_anchor = per_anchor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.out(self.conv(x))
        n, _, h, w = out.shape
        out = out.view(n, -1, self.per_anchor, h, w).permute(0, 3, 4, 1, 2)
        return out.reshape(n, -1, self.per_anchor)


class RetinaHeads(nn.Module):
    def __init__(self, c: int = 64, anchors: int = 9, num_classes: int = 20) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.classification_head = _RetinaHead(c, anchors, num_classes)
        self.regression_head = _RetinaHead(c, anchors, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x)
        return self.classification_head(f), self.regression_head(f)


class TinyBert(nn.Module):
    """A two-layer BERT-style classifier on (token ids, padding mask), pooled at [CLS]."""

    def __init__(
        self, vocab: int = 1000, dim: int = 64, heads: int = 4, ff: int = 128,
        num_classes: int = 2, seq_len: int = 32,
    ) -> None:  # fmt: skip
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim, padding_idx=0)
        self.position_embeddings = nn.Embedding(seq_len, dim)
        self.norm = nn.LayerNorm(dim, eps=1e-12)
        self.dropout = nn.Dropout(0.1)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, heads, ff, dropout=0.1, activation="gelu", layer_norm_eps=1e-12,
                batch_first=True,
            )
            for _ in range(2)
        )  # fmt: skip
        self.pooler = nn.Linear(dim, dim)
        self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(dim, num_classes))

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.word_embeddings(tokens) + self.position_embeddings(positions)
        x = self.dropout(self.norm(x))
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=mask)
        return self.classifier(torch.tanh(self.pooler(x[:, 0])))


class LSTMWithMeta(nn.Module):
    """A packed LSTM over (tokens, lengths) and an MLP over metadata, concatenated."""

    def __init__(
        self, vocab: int = 5000, emb: int = 64, hidden: int = 128, num_classes: int = 3,
        n_meta: int = 6,
    ) -> None:  # fmt: skip
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb, padding_idx=0)
        self.lstm = nn.LSTM(emb, hidden, batch_first=True)
        self.meta = nn.Sequential(nn.Linear(n_meta, 16), nn.ReLU())
        self.fc = nn.Sequential(
            nn.Linear(hidden + 16, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, num_classes)
        )

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor, meta: torch.Tensor
    ) -> torch.Tensor:
        packed = pack_padded_sequence(
            self.embedding(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, (h_n, _) = self.lstm(packed)
        return self.fc(torch.cat([h_n[-1], self.meta(meta)], dim=1))


class ImageText(nn.Module):
    """Late fusion: CNN image features and the mean token embedding, concatenated, then an MLP."""

    def __init__(self, vocab: int = 2000, emb: int = 64, num_classes: int = 2) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.embedding = nn.Embedding(vocab, emb)
        self.mlp = nn.Sequential(
            nn.Linear(64 + emb, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, num_classes)
        )

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        fused = torch.cat([self.cnn(image), self.embedding(text).mean(1)], dim=1)
        return self.mlp(fused)


class ConvAutoencoder(nn.Module):
    """Returns (recon, code)."""

    def __init__(self, code_dim: int = 32) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * 7 * 7, code_dim),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Linear(code_dim, 32 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
            nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(x)
        return self.decoder(code), code


class ActorCritic(nn.Module):
    """ikostrikov/pytorch-a2c-ppo-acktr-gail's CNNBase (its critic_linear) with a categorical
    policy's logits linear; returns (value, logits)."""

    def __init__(self, num_actions: int = 6, hidden: int = 512) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 32 * 2, 3, stride=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, hidden), nn.ReLU(),
        )  # fmt: skip
        self.critic_linear = nn.Linear(hidden, 1)
        self.dist_linear = nn.Linear(hidden, num_actions)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.main(inputs / 255.0)
        return self.critic_linear(x), self.dist_linear(x)


class MMoE(nn.Module):
    """Multi-gate mixture of experts: shared expert MLPs, per task a softmax gate on the input
    and a tower on the gate-weighted sum of the experts' outputs; returns one output per task.
    A task's gate and tower are registered together (a ModuleDict per task)."""

    def __init__(
        self, n_features: int = 32, d: int = 16, h: int = 8, experts: int = 3, tasks: int = 2
    ) -> None:
        super().__init__()
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(n_features, d), nn.ReLU()) for _ in range(experts)
        )
        self.tasks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "gate": nn.Linear(n_features, experts),
                    "tower": nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, 1)),
                }
            )
            for _ in range(tasks)
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        expert_out = torch.stack([e(x) for e in self.experts], dim=1)  # (N, experts, d)
        outs = []
        for task in self.tasks:
            gate = torch.softmax(task["gate"](x), dim=1)  # (N, experts)
            outs.append(task["tower"]((gate.unsqueeze(2) * expert_out).sum(1)))
        return tuple(outs)


class CVAE(nn.Module):
    """pytorch/examples' VAE MLP conditioned on a one-hot label c: returns (recon, mu, logvar)."""

    def __init__(self, h: int = 400, z_dim: int = 20, n_classes: int = 10) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784 + n_classes, h)
        self.fc21 = nn.Linear(h, z_dim)
        self.fc22 = nn.Linear(h, z_dim)
        self.fc3 = nn.Linear(z_dim + n_classes, h)
        self.fc4 = nn.Linear(h, 784)

    def encode(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h1 = torch.relu(self.fc1(torch.cat([x, c], dim=1)))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return mu
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc4(torch.relu(self.fc3(torch.cat([z, c], dim=1)))))

    def forward(
        self, x: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x.view(-1, 784), c)
        z = self.reparameterize(mu, logvar)
        return self.decode(z, c), mu, logvar


class CGANGenerator(nn.Module):
    """eriklindernoren/PyTorch-GAN's cgan.py Generator (img_shape (1, 28, 28))."""

    def __init__(self, n_classes: int = 10, latent_dim: int = 100) -> None:
        super().__init__()
        self.img_shape = (1, 28, 28)
        self.label_emb = nn.Embedding(n_classes, n_classes)

        def block(in_feat: int, out_feat: int, normalize: bool = True) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Linear(in_feat, out_feat)]
            if normalize:
                layers.append(nn.BatchNorm1d(out_feat, 0.8))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        self.model = nn.Sequential(
            *block(latent_dim + n_classes, 128, normalize=False),
            *block(128, 256),
            *block(256, 512),
            *block(512, 1024),
            nn.Linear(1024, 28 * 28),
            nn.Tanh(),
        )

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        gen_input = torch.cat((self.label_emb(labels), noise), -1)
        img = self.model(gen_input)
        return img.view(img.size(0), *self.img_shape)


class CGANDiscriminator(nn.Module):
    """eriklindernoren/PyTorch-GAN's cgan.py Discriminator (img_shape (1, 28, 28))."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.label_embedding = nn.Embedding(n_classes, n_classes)
        self.model = nn.Sequential(
            nn.Linear(n_classes + 28 * 28, 512),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 512),
            nn.Dropout(0.4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 512),
            nn.Dropout(0.4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(512, 1),
        )

    def forward(self, img: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d_in = torch.cat((img.view(img.size(0), -1), self.label_embedding(labels)), -1)
        return self.model(d_in)


class SiameseL1(nn.Module):
    """fangpin/siamese-pytorch's Siamese (Koch et al., 2015): |f(x1) - f(x2)| -> one logit."""

    def __init__(self, hidden: int = 4096) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 64, 10), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 7), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(128, 128, 4), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(128, 256, 4), nn.ReLU(),
        )  # fmt: skip
        self.liner = nn.Sequential(nn.Linear(9216, hidden), nn.Sigmoid())
        self.out = nn.Linear(hidden, 1)

    def forward_one(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = x.view(x.size()[0], -1)
        return self.liner(x)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        out1 = self.forward_one(x1)
        out2 = self.forward_one(x2)
        dis = torch.abs(out1 - out2)
        return self.out(dis)


class _FeaturesLinear(nn.Module):
    """pytorch-fm's FeaturesLinear: sum over the fields of a 1-wide embedding, plus a bias."""

    def __init__(self, field_dims: tuple[int, ...]) -> None:
        super().__init__()
        self.fc = nn.Embedding(sum(field_dims), 1)
        self.bias = nn.Parameter(torch.zeros((1,)))
        self.offsets = torch.tensor([0, *torch.tensor(field_dims).cumsum(0)[:-1].tolist()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.offsets.unsqueeze(0)
        return torch.sum(self.fc(x), dim=1) + self.bias


class DeepFM(nn.Module):
    """rixwew/pytorch-fm's DeepFactorizationMachineModel(field_dims=(10, 20, 30), embed_dim,
    mlp_dims=(hidden, hidden), dropout=p). Takes each field's raw id; adds the offsets itself."""

    def __init__(self, embed_dim: int = 16, hidden: int = 64, p: float = 0.2) -> None:
        super().__init__()
        field_dims = (10, 20, 30)
        self.linear = _FeaturesLinear(field_dims)
        self.embedding = nn.Embedding(sum(field_dims), embed_dim)  # FeaturesEmbedding's
        self.offsets = self.linear.offsets
        self.embed_output_dim = len(field_dims) * embed_dim
        layers: list[nn.Module] = []
        width = self.embed_output_dim
        for _ in range(2):
            layers += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(p)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    @staticmethod
    def fm(x: torch.Tensor) -> torch.Tensor:
        """FactorizationMachine(reduce_sum=True)."""
        square_of_sum = torch.sum(x, dim=1) ** 2
        sum_of_square = torch.sum(x**2, dim=1)
        ix = torch.sum(square_of_sum - sum_of_square, dim=1, keepdim=True)
        return 0.5 * ix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embed_x = self.embedding(x + self.offsets.unsqueeze(0))
        x = self.linear(x) + self.fm(embed_x) + self.mlp(embed_x.view(-1, self.embed_output_dim))
        return torch.sigmoid(x.squeeze(1))


class DuelingDQN(nn.Module):
    """Dueling DQN: Q = V + (A - A.mean(1, keepdim=True)) on the Nature-DQN features."""

    def __init__(self, num_actions: int = 6) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(4, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )  # fmt: skip
        self.value = nn.Sequential(nn.Linear(3136, 512), nn.ReLU(), nn.Linear(512, 1))
        self.advantage = nn.Sequential(nn.Linear(3136, 512), nn.ReLU(), nn.Linear(512, num_actions))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        advantage = self.advantage(x)
        return self.value(x) + advantage - advantage.mean(1, keepdim=True)


class JointIntentSlot(nn.Module):
    """JointBERT's heads (intent from [CLS], a slot label per token) on a one-layer encoder;
    returns (intent_logits, slot_logits)."""

    def __init__(
        self, vocab: int = 1000, dim: int = 64, heads: int = 4, ff: int = 128,
        n_intents: int = 7, n_slots: int = 12, seq_len: int = 24,
    ) -> None:  # fmt: skip
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim, padding_idx=0)
        self.position_embeddings = nn.Embedding(seq_len, dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(0.1)
        self.encoder = nn.TransformerEncoderLayer(dim, heads, ff, dropout=0.1, batch_first=True)
        self.intent_classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(dim, n_intents))
        self.slot_classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(dim, n_slots))

    def forward(
        self, tokens: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.word_embeddings(tokens) + self.position_embeddings(positions)
        x = self.encoder(self.dropout(self.norm(x)), src_key_padding_mask=mask)
        return self.intent_classifier(x[:, 0]), self.slot_classifier(x)
