package batch

import (
	"context"
	"fmt"
	"net/http"

	"github.com/rcrouter/rcrouter/destinations"
)

// MaxRequests is the most requests one Endpoint.Send makes, splits and
// resends included; when they are spent, the last verdict stands for the
// items it named, except that items the vendor did not single out are
// retried when a split or resend was asked for (see send). It bounds how long a batch can
// take (Capabilities.MaxWait).
const MaxRequests = 6

// Endpoint sends batches of T to one URL of a vendor's API and sorts out
// what the vendor answered, event by event. Each request becomes, for every
// item it carried, an exchange showing that item's part of the body.
type Endpoint[T any] struct {
	Client *Client
	URL    string
	Header http.Header // extra request headers
	// Encode is the request body for items; called for the whole batch and
	// for each item alone (its part, for its dispatch record).
	Encode func(items []T) ([]byte, error)
	// Judge classifies the answer to a request for items.
	Judge func(r Response, items []T) Verdict
}

// Verdict is what an answer means for the items of its request.
type Verdict struct {
	// All is the result of every item that Each does not name.
	All destinations.Result
	// Each holds the results of the items the answer names (by index).
	Each map[int]destinations.Result
	// Again sends the items Each does not name again at once, in a request
	// without the named ones (Amplitude: "remove the rejected events and
	// resend the rest").
	Again bool
	// Split sends the items again at once, in two halves: the vendor
	// refused the batch as a whole (too large, or one bad event it does not
	// name). A single item gets All.
	Split bool
}

// Send makes one or more requests for items (more when a verdict asks for a
// split or a resend) and returns one result per item, in order.
func (p *Endpoint[T]) Send(ctx context.Context, items []T) []destinations.Result {
	results := make([]destinations.Result, len(items))
	budget := MaxRequests
	p.send(ctx, items, results, make([][]destinations.Exchange, len(items)), &budget)
	return results
}

func (p *Endpoint[T]) send(ctx context.Context, items []T, results []destinations.Result, prior [][]destinations.Exchange, budget *int) {
	body, err := p.Encode(items)
	if err != nil {
		for i := range items {
			results[i] = destinations.Result{Outcome: destinations.Permanent, Reason: destinations.ReasonRejected,
				Message: "encoding the event: " + err.Error(), Exchanges: prior[i]}
		}
		return
	}
	resp := p.Client.Post(ctx, p.URL, body, p.Header)
	*budget--
	for i := range items {
		own := body
		if len(items) > 1 {
			own, _ = p.Encode(items[i : i+1])
		}
		prior[i] = append(prior[i], p.Client.Own(resp.Exchange, own))
	}
	v := p.Judge(resp, items)
	switch {
	case v.Split && len(items) > 1 && *budget >= 2:
		half := len(items) / 2
		*budget-- // kept for the second half's request
		p.send(ctx, items[:half], results[:half], prior[:half], budget)
		*budget++
		p.send(ctx, items[half:], results[half:], prior[half:], budget)
		return
	case v.Again && len(v.Each) > 0 && len(v.Each) < len(items) && *budget >= 1:
		var rest []T
		var restAt []int
		var restPrior [][]destinations.Exchange
		for i := range items {
			if r, named := v.Each[i]; named {
				r.Exchanges = prior[i]
				results[i] = r
				continue
			}
			rest, restAt, restPrior = append(rest, items[i]), append(restAt, i), append(restPrior, prior[i])
		}
		if len(rest) < len(items) {
			sub := make([]destinations.Result, len(rest))
			p.send(ctx, rest, sub, restPrior, budget)
			for j, i := range restAt {
				results[i] = sub[j]
			}
			return
		}
	}
	all := v.All
	switch {
	case all.Outcome != destinations.Permanent:
	case v.Split && len(items) > 1:
		// The vendor refused these items together and the budget allows no
		// further split: which of them it cannot take is unknown, and most
		// would likely pass alone. Retried rather than dead, so that a good
		// event does not die for sharing a request with a bad one.
		all.Outcome = destinations.Retry
		all.Message = fmt.Sprintf("%s (refused in a request of %d events that this attempt could not split further)", all.Message, len(items))
	case v.Again && len(v.Each) > 0:
		// The vendor named the items it refused; the others were not at
		// fault, only not ingested, and the budget allows no resend.
		all.Outcome = destinations.Retry
		all.Message = fmt.Sprintf("%s (not ingested with the events it refused; this attempt could not send it again)", all.Message)
	}
	for i := range items {
		r := all
		if named, ok := v.Each[i]; ok {
			r = named
		}
		r.Exchanges = prior[i]
		results[i] = r
	}
}
