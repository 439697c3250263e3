package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	client "github.com/proglog/proglog/clients/go"
)

// The examples talk to a dev server: `proglog serve --dev` listens on
// 127.0.0.1:8400 with certificates in ./proglog-data/certs.
const (
	caFile   = "proglog-data/certs/ca.pem"
	certFile = "proglog-data/certs/root.pem"
	keyFile  = "proglog-data/certs/root-key.pem"
)

func Example() {
	ctx := context.Background()
	c, err := client.New(ctx, "proglog://127.0.0.1:8400", client.WithTLSFiles(caFile, certFile, keyFile))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	off, err := c.ProduceValue(ctx, []byte("hello, log"))
	if err != nil {
		log.Fatal(err)
	}
	rec, err := c.Consume(ctx, off)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d: %s\n", rec.Offset, rec.Value)
}

func ExampleNew_cluster() {
	// Any server of the cluster will do; the others are discovered. Reads
	// go to followers, appends to the leader.
	c, err := client.New(context.Background(), "proglog://log-0.internal:8400,log-1.internal:8400",
		client.WithTLSFiles("ca.pem", "billing.pem", "billing-key.pem"),
		client.WithDialTimeout(5*time.Second),
		client.WithProduceRetries(0), // at-most-once: never retry a produce that may have been written
	)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	servers, err := c.Servers(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range servers {
		fmt.Println(s.ID, s.RPCAddr, s.IsLeader)
	}
}

func ExampleClient_Produce() {
	ctx := context.Background()
	c, err := client.New(ctx, "127.0.0.1:8400", client.WithTLSFiles(caFile, certFile, keyFile))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	off, err := c.Produce(ctx, &client.Record{
		Key:     []byte("order-17"),
		Value:   []byte(`{"total": 42}`),
		Headers: []client.Header{{Key: "content-type", Value: []byte("application/json")}},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("written at", off)
}

func ExampleClient_ProduceBatch() {
	ctx := context.Background()
	c, err := client.New(ctx, "127.0.0.1:8400", client.WithTLSFiles(caFile, certFile, keyFile))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	first, err := c.ProduceBatch(ctx, []*client.Record{{Value: []byte("a")}, {Value: []byte("b")}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("a at", first, "and b at", first+1)
}

func ExampleClient_Records() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.New(ctx, "127.0.0.1:8400", client.WithTLSFiles(caFile, certFile, keyFile))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// Every record from offset 0 on, then new ones as they come, for a
	// minute.
	for rec, err := range c.Records(ctx, 0) {
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%d: %s\n", rec.Offset, rec.Value)
	}
}

func ExampleOffsetOutOfRangeError() {
	ctx := context.Background()
	c, err := client.New(ctx, "127.0.0.1:8400", client.WithTLSFiles(caFile, certFile, keyFile))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	_, err = c.Consume(ctx, 1_000_000)
	var oor *client.OffsetOutOfRangeError
	switch {
	case errors.As(err, &oor):
		fmt.Printf("offset %d is not in the log, which holds [%d, %d)\n", oor.Offset, oor.Lowest, oor.Next)
	case errors.Is(err, client.ErrPermissionDenied):
		fmt.Println("this certificate may not consume")
	case err != nil:
		log.Fatal(err)
	}
}

func ExampleClient_ProduceAsync() {
	ctx := context.Background()
	c, err := client.New(ctx, "127.0.0.1:8400", client.WithTLSFiles(caFile, certFile, keyFile),
		client.WithLinger(2*time.Millisecond)) // wait a little for fuller batches
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// The records go out in few ProduceBatch requests, in this order.
	var fs []*client.ProduceFuture
	for _, line := range []string{"a", "b", "c"} {
		fs = append(fs, c.ProduceAsync(ctx, &client.Record{Value: []byte(line)}))
	}
	if err := c.Flush(ctx); err != nil {
		log.Fatal(err)
	}
	for _, f := range fs {
		off, err := f.Result()
		if err != nil {
			log.Fatal(err) // this record was not written (or may have been; see the package doc)
		}
		fmt.Println(off)
	}
}

func ExampleClient_Topic() {
	ctx := context.Background()
	c, err := client.New(ctx, "127.0.0.1:8400", client.WithTLSFiles(caFile, certFile, keyFile))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.CreateTopic(ctx, "orders", client.TopicConfig{Partitions: 12, ReplicationFactor: 3}); err != nil && !errors.Is(err, client.ErrTopicExists) {
		log.Fatal(err)
	}
	orders := c.Topic("orders")
	// The key chooses the partition (Kafka's default partitioner): one
	// customer's orders stay in order.
	pos, err := orders.Produce(ctx, &client.Record{Key: []byte("customer-42"), Value: []byte(`{"total": 42}`)})
	if err != nil {
		log.Fatal(err)
	}
	rec, err := orders.Partition(pos.Partition).Consume(ctx, pos.Offset)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("partition %d offset %d: %s\n", pos.Partition, pos.Offset, rec.Value)
}

func ExampleKeyPartition() {
	// Where a Kafka producer (and the Python client) puts the key too.
	fmt.Println(client.KeyPartition([]byte("customer-42"), 12))
	// Output: 9
}
