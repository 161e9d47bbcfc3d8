# The operator image: `docker build -f deploy/images/operator.Dockerfile -t pyroclast-operator:0.1.0 .`
# (build context: the repository root). Runs as 65532 with a read-only root filesystem; no shell tools needed.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api api
COPY controller controller
COPY scheduling scheduling
COPY pyroclast pyroclast
COPY workloads workloads
RUN python -m venv /opt/pyroclast \
 && /opt/pyroclast/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/pyroclast/bin/pip install --no-cache-dir . \
 && /opt/pyroclast/bin/python -m compileall -q /opt/pyroclast

FROM python:3.11-slim
COPY --from=build /opt/pyroclast /opt/pyroclast
ENV PATH=/opt/pyroclast/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["pyroclast"]
CMD ["run", "--leader-elect", "--metrics-bind-address=0.0.0.0:8080", "--health-probe-bind-address=0.0.0.0:8081"]
