# metalgate's image for people with Docker; scripts/image.sh builds the same image without a
# daemon (static binary, FROM scratch, non-root, /metalgate as the entrypoint).
#   docker build -t localhost/metalgate:0.1.0 .
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake=3.25.* python3=3.11.* \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The same build as scripts/image.sh's: static, without the lab, code ordered, stripped.
RUN ./scripts/static-build.sh \
 && mkdir -p /out/etc /out/tmp /out/usr/share/doc/metalgate \
 && chmod 1777 /out/tmp \
 && cp target/static/metalgate.stripped /out/metalgate \
 && cp LICENSE /out/usr/share/doc/metalgate/LICENSE \
 && printf 'root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' > /out/etc/passwd \
 && printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' > /out/etc/group

FROM scratch
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="metalgate" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/metalgate/metalgate" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/ /
USER 65532:65532
ENV PATH=/
ENTRYPOINT ["/metalgate"]
CMD ["--help"]
