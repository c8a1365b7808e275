# ConsultPay in a container: built from source, run as a non-root user with only the
# binary, CA certificates and a health check.
#
#   docker build -t consultpay .
#   docker run -p 8080:8080 -e CONSULTPAY_PUBLIC_URL=http://localhost:8080 consultpay
#
# The image holds no secret: give STRIPE_SECRET_KEY, CONSULTPAY_SESSION_KEY,
# DATABASE_URL and the rest as environment variables (see README.md).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p consultpay --bin consultpay \
 && cp target/release/consultpay /consultpay

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/consultpay --create-home --shell /usr/sbin/nologin consultpay
COPY --from=build /consultpay /usr/local/bin/consultpay
USER consultpay
WORKDIR /var/lib/consultpay
ENV CONSULTPAY_LISTEN=0.0.0.0:8080 \
    CONSULTPAY_ADMIN_LISTEN=127.0.0.1:9464 \
    DATABASE_URL=sqlite:///var/lib/consultpay/consultpay.db?mode=rwc
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD curl -fsS http://127.0.0.1:9464/readyz || exit 1
ENTRYPOINT ["/usr/local/bin/consultpay"]
CMD ["serve"]
