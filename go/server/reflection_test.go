package server_test

import (
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	logv1 "github.com/proglog/proglog/proto/log/v1"
)

// gRPC server reflection lists the services to a client the ACL lets read
// "reflection" (root, by the default policy) and refuses everyone else
// before reading their request.
func TestReflectionIsAuthorized(t *testing.T) {
	f := newFixture(t, fixtureOpts{})

	stream, err := reflectionv1.NewServerReflectionClient(f.conn(f.clientTLS("root"))).ServerReflectionInfo(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	list := &reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}
	if err := stream.Send(list); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !slices.Contains(names, logv1.Log_ServiceDesc.ServiceName) {
		t.Fatalf("reflection lists %q, want %s among them", names, logv1.Log_ServiceDesc.ServiceName)
	}
	// The schema of log.v1.Log is there too: what grpcurl needs without the .proto.
	sym := &reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: logv1.Log_ServiceDesc.ServiceName,
	}}
	if err := stream.Send(sym); err != nil {
		t.Fatal(err)
	}
	if resp, err = stream.Recv(); err != nil || len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Fatalf("descriptor of %s: %v, %v", logv1.Log_ServiceDesc.ServiceName, resp, err)
	}

	// nobody: refused, on both versions of the service.
	conn := f.conn(f.clientTLS("nobody"))
	v1, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctxT(t))
	if err == nil {
		_ = v1.Send(list)
		_, err = v1.Recv()
	}
	wantStatus(t, err, codes.PermissionDenied, `nobody may not read on "reflection"`)
	alpha, err := reflectionv1alpha.NewServerReflectionClient(conn).ServerReflectionInfo(ctxT(t))
	if err == nil {
		_ = alpha.Send(&reflectionv1alpha.ServerReflectionRequest{MessageRequest: &reflectionv1alpha.ServerReflectionRequest_ListServices{}})
		_, err = alpha.Recv()
	}
	wantStatus(t, err, codes.PermissionDenied, `nobody may not read on "reflection"`)
}
