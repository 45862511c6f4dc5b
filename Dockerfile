# Production image of the gateway (API and workers run from the same image).
FROM python:3.11-slim-bookworm
RUN useradd --system --home /srv/gateway gateway
WORKDIR /srv/gateway
COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install --no-cache-dir . && rm -rf /root/.cache
USER gateway
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
ENTRYPOINT ["gateway"]
CMD ["serve", "--role", "api"]
