# hookrelay image: built in a Go image, run from a distroless one (no shell, non-root).
#   docker build -t hookrelay .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/hookrelay ./cmd/hookrelay

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hookrelay /hookrelay
COPY configs/hookrelay.yaml /etc/hookrelay/
USER nonroot:nonroot
EXPOSE 8080 8081
ENTRYPOINT ["/hookrelay"]
CMD ["serve", "--config", "/etc/hookrelay/hookrelay.yaml"]
