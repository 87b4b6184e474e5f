# syntax=docker/dockerfile:1
#
# ssm-injector: one static binary in a FROM-scratch image, run as 65532:65532.
#
#   docker build -t ssm-injector .
#
# The binary is a static glibc build (no musl target needed): glibc >= 2.34 has the
# `files` and `dns` NSS backends built in, so name resolution works without libnss_*.so,
# /etc/nsswitch.conf or a shell. It is not position-independent
# (-C relocation-model=static): no relocations to apply at start, so fewer pages of the
# binary are touched and dirtied (idle RSS) and the file is smaller. The linker (rustc's
# LLD) places first the functions listed in src/hot-functions.txt, every function an idle
# sidecar runs, then those start-up runs (bench/hot_functions.py writes the list), so the
# pages an idle sidecar keeps after start-up (src/trim.rs) are few. HTTPS to AWS uses rustls with the system roots
# (rustls-native-certs), so the final stage carries Debian's CA bundle and points
# SSL_CERT_FILE at it. scripts/check-packaging builds the binary exactly as below,
# assembles this final stage's file system and runs it with chroot against moto.

ARG RUST_IMAGE=rust:1.95-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Dependencies first, so code changes do not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs src/hot-functions.txt \
    && RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static -C link-arg=-Wl,--symbol-ordering-file=src/hot-functions.txt -C link-arg=-Wl,--no-warn-symbol-ordering" \
       cargo build --release --locked --target x86_64-unknown-linux-gnu \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static -C link-arg=-Wl,--symbol-ordering-file=src/hot-functions.txt -C link-arg=-Wl,--no-warn-symbol-ordering" \
       cargo build --release --locked --target x86_64-unknown-linux-gnu \
    && cp target/x86_64-unknown-linux-gnu/release/ssm-injector /ssm-injector \
    && /ssm-injector --version
# The final stage's file system, owned as it will be used:
#   /ssm             an empty mount point for the shared volume, owned by 65532 (ECS
#                    Fargate copies it, with its owner, into a bind-mount volume)
#   /tmp             writable scratch for the rare tool that needs one (mode 1777)
#   /etc/passwd,group  name the 65532 "nonroot" user, as distroless does
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/ssm /rootfs/tmp \
    && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
    && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /rootfs/etc/passwd \
    && printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group \
    && chown 65532:65532 /rootfs/ssm && chmod 0755 /rootfs/ssm && chmod 1777 /rootfs/tmp

FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ssm-injector" \
      org.opencontainers.image.description="Get AWS SSM Parameter Store values and Secrets Manager secrets into containers, safely, and keep them current." \
      org.opencontainers.image.source="https://github.com/ssm-injector/ssm-injector" \
      org.opencontainers.image.url="https://github.com/ssm-injector/ssm-injector" \
      org.opencontainers.image.documentation="https://github.com/ssm-injector/ssm-injector#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="ssm-injector" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="scratch"
COPY --from=build /rootfs/ /
COPY --from=build /ssm-injector /ssm-injector
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 8099 8443
ENTRYPOINT ["/ssm-injector"]
CMD ["--help"]
